"""`orderbridge enqueue FILE`: orders already in add-orders format into the outbox (custom shops, ERPs).

Input is a JSON file `{"orders": [...]}` (or a bare list) or JSON Lines, one order a line; `-` reads
standard input. JSON Lines is streamed, so a file of any size runs in constant memory.
"""
from __future__ import annotations

import json
import sys
from typing import Iterator, TextIO

HELP = "validate orders in add-orders format (JSON {\"orders\": [...]} or JSON Lines; - for stdin) and put them in the outbox"
CHUNK = 1000      # orders per transaction


def add_arguments(p) -> None:
    p.add_argument("file", help="a JSON file {\"orders\": [...]} or JSON Lines (one order a line); - for standard input")
    p.add_argument("--shop", default="enqueue", help="shop name recorded with the orders (default: enqueue)")


def read_orders(f: TextIO) -> Iterator[tuple[str, object]]:
    """(where, order-or-error) pairs: `where` is 'line N' (JSON Lines) or 'order #N' (a JSON document)."""
    skipped, first = _next_nonblank(f, 0)
    head = _json_or_none(first.lstrip("\ufeff"))
    jsonl = isinstance(head, dict) and "orders" not in head
    gap, second = 0, ""
    if head is None and first.strip():
        # A broken first line must not cost the valid lines after it: JSON Lines if the next line is an order.
        gap, second = _next_nonblank(f, 0)
        jsonl = isinstance(_json_or_none(second), dict)
    if jsonl:
        yield from _lines(skipped + 1, _chain([first] + [""] * gap + ([second] if second else []), f))
        return
    text = (first + "\n" * gap + second + f.read()).lstrip("\ufeff")
    try:
        doc = json.loads(text) if text.strip() else {"orders": []}
    except ValueError as e:
        yield "input", ValueError(f"neither a JSON document nor JSON Lines: {e}")
        return
    orders = doc.get("orders") if isinstance(doc, dict) else doc
    if not isinstance(orders, list):
        yield "input", ValueError('expected {"orders": [...]}, a list of orders, or JSON Lines')
        return
    for i, o in enumerate(orders):
        yield f"order #{i}", o


def _next_nonblank(f: TextIO, skipped: int) -> tuple[int, str]:
    """(blank lines skipped, the next non-blank line or '')."""
    line = f.readline()
    while line and not line.strip():
        skipped += 1
        line = f.readline()
    return skipped, line


def _json_or_none(text: str):
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _lines(lineno: int, lines) -> Iterator[tuple[str, object]]:
    for line in lines:
        if line.strip():
            try:
                yield f"line {lineno}", json.loads(line.lstrip("\ufeff"))
            except ValueError as e:
                yield f"line {lineno}", ValueError(f"not valid JSON: {e}")
        lineno += 1


def _chain(read: list[str], f: TextIO) -> Iterator[str]:
    yield from read
    yield from f


def run(args, config) -> int:
    from connector.store import init_db, make_engine

    engine = make_engine(config.database)
    init_db(engine)
    from connector.errors import InvalidInput
    try:
        if args.file == "-":
            counts = enqueue_stream(engine, sys.stdin, args.shop, "stdin")
        else:
            try:
                with open(args.file, encoding="utf-8") as f:
                    counts = enqueue_stream(engine, f, args.shop, args.file)
            except OSError as e:
                raise InvalidInput(f"cannot read {args.file}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        # The orders before the bad byte are enqueued (each chunk commits); the rest is named, not dropped.
        raise InvalidInput(f"{'stdin' if args.file == '-' else args.file}: not UTF-8 text ({e.reason}, byte 0x{e.object[e.start]:02x}); "
                           "re-save it as UTF-8, then enqueue it again (orders already enqueued stay unchanged)") from None
    finally:
        engine.dispose()
    enq, unchanged, stale, invalid = counts
    print(f"enqueued {enq}, unchanged {unchanged}" + (f", older than enqueued {stale}" if stale else "") + f", invalid {invalid}")
    return 1 if invalid else 0


def enqueue_stream(engine, f: TextIO, shop: str, name: str) -> tuple[int, int, int, int]:
    """Validate and enqueue; each invalid order goes to stderr with where it was and what is wrong."""
    from sqlalchemy.orm import Session

    from connector.format import InvalidOrder, order_to_wire, parse_order
    from connector.outbox import EnqueueResult, Version, enqueue

    total, invalid, batch = EnqueueResult(), 0, []

    def commit() -> None:
        nonlocal total
        with Session(engine) as s:
            total += enqueue(s, batch)
            s.commit()
        batch.clear()

    for where, data in read_orders(f):
        if isinstance(data, Exception):
            invalid += 1
            print(f"{name}: {where}: {data}", file=sys.stderr)
            continue
        try:
            order = parse_order(data)
        except InvalidOrder as e:
            invalid += 1
            oid = data.get("externalOrderId") if isinstance(data, dict) else None
            print(f"{name}: {where} (externalOrderId {oid if oid not in (None, '') else '?'}): {e.message}", file=sys.stderr)
            continue
        batch.append(Version(shop, order_to_wire(order), source=f"enqueue:{name}:{where}"))
        if len(batch) >= CHUNK:
            commit()
    if batch:
        commit()
    return total.enqueued, total.unchanged, total.stale, invalid
