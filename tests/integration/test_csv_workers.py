"""Worker processes change nothing but speed: same outbox, same summary, same rejected-rows report."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.csv import Context, import_file
from adapters.csv.importer import CHUNK_ORDERS, _pack, _unpack
from adapters.csv.seen import SeenOrders
from adapters.csv.sinks import OutboxSink
from connector.store import OrderHead, OutboxRow, init_db, make_engine

BROKEN = Path(__file__).parents[1] / "fixtures" / "csv_extra" / "shopify_broken.csv"


def many_copies(path: Path, copies: int) -> None:
    """The broken fixture again and again (orders renamed per copy), then the first copy again: every
    kind of error in several chunks, and orders that reappear chunks later."""
    header, *rows = list(csv.reader(BROKEN.open(newline="", encoding="utf-8")))
    name = header.index("Name")
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for n in [*range(copies), 0]:
            for r in rows:
                w.writerow([f"{c}-{n}" if i == name and c else c for i, c in enumerate(r)])


def run(tmp_path: Path, src: Path, workers: int):
    d = tmp_path / f"w{workers}"
    d.mkdir()
    path = d / src.name
    path.write_bytes(src.read_bytes())
    engine = make_engine(f"sqlite:///{d}/c.db")
    init_db(engine)
    sink = OutboxSink(engine, "legacy", src.name)
    _, summary = import_file(path, "shopify", Context(), sink, workers=workers)
    with engine.connect() as c:
        outbox = c.execute(select(OutboxRow.external_order_id, OutboxRow.payload, OutboxRow.content_hash,
                                  OutboxRow.source).order_by(OutboxRow.id)).all()
        heads = c.execute(select(OrderHead.external_order_id, OrderHead.content_hash, OrderHead.source_updated_at,
                                 OrderHead.outbox_id).order_by(OrderHead.external_order_id)).all()
    engine.dispose()
    report = (d / f"{path.stem}.rejected.csv").read_text(encoding="utf-8")
    errors = [(e.line, e.column, e.reason) for e in summary.errors]
    counts = (summary.rows, summary.orders, summary.rejected_rows, summary.rejected_orders, summary.error_count,
              summary.notes, sink.result.enqueued, sink.result.unchanged)
    return counts, errors, outbox, heads, report


def test_workers_give_the_same_import_as_one_process(tmp_path):
    src = tmp_path / "big.csv"
    many_copies(src, 25)
    alone = run(tmp_path, src, workers=0)
    assert alone[0][1] + alone[0][3] > 2 * CHUNK_ORDERS         # several chunks
    assert "already appeared at line" in alone[4]             # the last copy repeats the first
    for got, want in zip(run(tmp_path, src, workers=2), alone):
        assert got == want


@pytest.mark.parametrize("batch", [[("a", 2), ("b", 3), ("a", 4), ("c", 5), ("b", 6)]])
def test_seen_in_batches_matches_one_at_a_time(batch):
    one, many = SeenOrders(), SeenOrders()
    try:
        first = [("a", 1), ("z", 1)]
        assert [one.first_line(k, n) for k, n in first] == many.first_lines(first) == [None, None]
        assert [one.first_line(k, n) for k, n in batch] == many.first_lines(batch) == [1, None, 1, None, 3]
    finally:
        one.close()
        many.close()


@pytest.mark.parametrize("cells", [("#1", "", "a@b.c"), ("#1", "note\x1fwith a unit separator", ""), ("",)])
def test_rows_travel_to_workers_unchanged(cells):
    assert tuple(_unpack(pickle.loads(pickle.dumps(_pack(cells))))) == cells + ("",)


def test_the_fast_build_gives_what_the_careful_one_gives():
    from adapters.csv.presets.base import Header
    from adapters.csv.presets.shopify import ShopifyExport
    from adapters.csv.reader import read_rows
    good = Path(__file__).parents[1] / "fixtures" / "csv" / "shopify_orders_export_2026.csv"
    for path in (good, BROKEN):
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = read_rows(f, ",", path.name)
            header = Header(next(rows).cells)
            bound = ShopifyExport(header)
            orders, fast = {}, 0
            for row in rows:
                row.cells.extend([""] * (header.width + 1 - len(row.cells)))
                orders.setdefault(bound.key(row.cells), []).append(row)
        for key, group in orders.items():
            built = bound._fast_build(group)
            if built is not None:
                fast += 1
                assert built == bound._careful_build(group), (path.name, key)
        if path == good:
            assert fast == len(orders)      # every valid order takes the fast path
