"""The import pipeline: rows → orders (grouped as they come) → validated wire orders → a sink.

Memory stays flat whatever the file size: the main process holds a few chunks of orders at a
time, and the sink holds at most one chunk of orders before it commits them.

A sink that takes prepared orders (`add_prepared`, the outbox) gets them from worker processes:
the main process reads, groups and checks the rows, writes the rejected-rows report and the
outbox, while forked workers build, validate (`validate_to_canonical`) and serialise chunks of orders.
Chunks come back in the order they were sent, so reports and the outbox keep the file's order.
"""
from __future__ import annotations

import csv
import gc
from hashlib import sha256
import multiprocessing
import os
import traceback
from collections import deque
from datetime import datetime
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Protocol

from connector.format import InvalidOrder, validate_to_canonical, validate_to_wire

from adapters.csv.presets.base import Bound, Built, OrderRejected
from adapters.csv.reader import CsvUnreadable, Dialect, Row
from adapters.csv.seen import SeenOrders
from adapters.csv.values import CellError

ERROR_COLUMN = "import error"


class Sink(Protocol):
    def add(self, wire: dict, line: int, built: Built) -> None: ...

    def close(self) -> None: ...


class Prepared(NamedTuple):
    """A validated order as the outbox stores it, made by a worker process."""

    external_order_id: str
    canonical: str                  # canonical_json of the wire order
    digest: str                     # sha256 of `canonical` (the outbox's content hash)
    line: int                       # the order's first line
    source_updated_at: datetime | None


CHUNK_ORDERS = 100          # orders per chunk sent to a worker (one chunk in flight per worker)


MAX_WORKERS = 2     # the main process (reading, checking, writing) cannot feed more (bench/csv_import.py)


def default_workers() -> int:
    """Worker processes for an import: one per CPU the process may use, at most MAX_WORKERS;
    0 (everything in this process) on one CPU or where processes cannot be forked."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return min(n, MAX_WORKERS) if n > 1 and "fork" in multiprocessing.get_all_start_methods() else 0


def translate(bound: Bound, rows: list[Row]) -> tuple:
    """One order's rows → ("ok", id, canonical JSON, hash, updated_at, notes) or ("rejected", errors).

    Errors travel as (column, reason, line) tuples: CellError does not survive pickling.
    A preset that can write a usual order's canonical JSON straight from its cells (`fast_canonical`)
    does so; everything else is built and validated.
    """
    fast = getattr(bound, "fast_canonical", None)
    if fast is not None and (done := fast(rows)) is not None:
        oid, text, updated_at, notes = done
        return "ok", oid, text, sha256(text.encode()).hexdigest(), updated_at, notes
    try:
        built = bound.build(rows)
    except OrderRejected as e:
        return "rejected", [(x.column, x.reason, x.line) for x in e.errors]
    try:
        wire, text, digest = validate_to_canonical(built.data)
    except InvalidOrder as e:
        return "rejected", [(x.column, x.reason, x.line) for x in _schema_errors(e, built, rows)]
    return "ok", wire["externalOrderId"], text, digest, built.source_updated_at, built.notes


def _translate_chunk(bound: Bound, groups_: list[list[Row] | None]) -> list[tuple | None]:
    return [None if g is None else translate(bound, g) for g in groups_]


def _serve(bound: Bound, conn, compact: bool) -> None:
    """A worker's loop: chunks in, translations out, until None (or the main process is gone).

    A bug here must not pass for a clean import: its traceback goes back and the main process raises it.
    """
    # What the fork inherited lives as long as the worker: the collector need not walk it again and
    # again (that walk also copies the shared pages it touches).
    gc.freeze()
    try:
        while (todo := conn.recv()) is not None:
            try:
                if compact:
                    todo = [g and [Row(line, _unpack(cells)) for line, cells in g] for g in todo]
                conn.send(_translate_chunk(bound, todo))
            except Exception:
                conn.send(_Failure(traceback.format_exc()))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass


_SEP = "\x1f"     # ASCII unit separator: one string per row pickles far cheaper than a tuple of cells
_SEP_COUNT = _SEP.count


def _pack(cells: tuple[str, ...]) -> str | tuple[str, ...]:
    """A row's cells as one string; as they are when a cell holds the separator itself."""
    text = _SEP.join(cells)
    return text if _SEP_COUNT(text) == len(cells) - 1 else cells


def _unpack(cells: str | tuple[str, ...]) -> list[str] | tuple[str, ...]:
    """_pack undone, plus the blank pad cell that stands in for missing columns."""
    if type(cells) is str:
        out = cells.split(_SEP)
        out.append("")
        return out
    return cells + ("",)


class _Failure(NamedTuple):
    traceback: str


class _Worker:
    """A forked process translating one chunk at a time; it inherits the bound preset (lambdas do not
    pickle). Plain pipes, no helper threads: the main process sends a chunk, later receives its result."""

    def __init__(self, bound: Bound, compact: bool):
        ctx = multiprocessing.get_context("fork")
        self.conn, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(bound, theirs, compact), daemon=True)
        self.process.start()
        theirs.close()
        self.busy = False

    def send(self, todo: list) -> None:
        self.conn.send(todo)
        self.busy = True

    def receive(self) -> list:
        try:
            result = self.conn.recv()
            self.busy = False
        except EOFError:
            raise RuntimeError(f"an import worker process died (exit code {self.process.exitcode})") from None
        if isinstance(result, _Failure):
            raise RuntimeError(f"an import worker process failed:\n{result.traceback}")
        return result

    def stop(self) -> None:
        """Ask the worker to finish; one still holding a chunk (the import failed) is ended at once."""
        if self.busy:
            self.process.terminate()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


@dataclass
class Summary:
    rows: int = 0
    orders: int = 0                 # orders read without error (handed to the sink)
    rejected_rows: int = 0
    rejected_orders: int = 0
    errors: list[CellError] = field(default_factory=list)   # the first few, for the console
    error_count: int = 0
    notes: dict[str, int] = field(default_factory=dict)     # warning → how many orders
    first_note_line: dict[str, int] = field(default_factory=dict)
    rejected_file: Path | None = None

    def note(self, text: str, line: int) -> None:
        self.notes[text] = self.notes.get(text, 0) + 1
        self.first_note_line.setdefault(text, line)


class RejectedFile:
    """`<input stem>.rejected.csv` beside the input: the original columns plus the error, same dialect,
    so the file can be fixed and imported again (the extra column is ignored on re-import)."""

    def __init__(self, path: Path, header: list[str], dialect: Dialect):
        self.path = path
        # Importing a report again: its error column is dropped and written anew, not doubled.
        self.keep = [i for i, n in enumerate(header) if n.strip() != ERROR_COLUMN]
        self.header = [header[i] for i in self.keep]
        self.width = len(header)
        self.dialect = dialect
        self._f = None
        self._w = None

    def write(self, rows: list[Row], messages: dict[int, str]) -> None:
        if self._w is None:
            encoding = self.dialect.encoding
            if encoding == "utf-8-sig" and not self.dialect.bom:
                encoding = "utf-8"
            try:
                self._f = open(self.path, "w", encoding=encoding, newline="")
            except OSError as e:
                raise CsvUnreadable(f"cannot write the rejected-rows report {self.path}: {e.strerror} "
                                    "(import a copy of the file from a folder you can write to)") from None
            self._w = csv.writer(self._f, delimiter=self.dialect.delimiter)
            self._w.writerow(self.header + [ERROR_COLUMN])
        for row in rows:
            # The error sits in its own column; cells beyond the header (the row's fault) follow it.
            extra = row.cells[self.width:]
            while extra and not extra[-1]:
                extra = extra[:-1]         # the importer's padding
            self._w.writerow([row.cells[i] for i in self.keep] + [messages[row.line]] + extra)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def rejected_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def _messages(tree, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Walk marshmallow's error tree: (field path, message) pairs; `_schema` adds no path step."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _messages(v, path if k == "_schema" else path + (k,))
    elif isinstance(tree, list):
        for m in tree:
            yield from _messages(m, path)
    else:
        yield path, str(tree)


def _schema_errors(e: InvalidOrder, built: Built, rows: list[Row]) -> list[CellError]:
    """Map the add-orders schema's field errors back to columns and lines."""
    out = []
    for path, reason in _messages(e.fields) if e.fields else [((), e.message)]:
        line, key = rows[0].line, ".".join(str(p) for p in path)
        if path[:1] == ("items",) and len(path) > 1 and isinstance(path[1], int):
            # one-row-per-item layouts: item i is row i; otherwise the order's first row
            line = rows[path[1]].line if len(rows) > 1 and path[1] < len(rows) else line
            key = "items." + ".".join(str(p) for p in path[2:])
        column = built.columns.get(key) or built.columns.get(key.split(".")[0]) or key or "order"
        if reason == "Missing data for required field.":
            reason = "is required"
        out.append(CellError(column, reason, line))
    return out


class Importer:
    """Turns the rows of one file into orders for a sink, writing rejected rows beside the input."""

    MAX_CONSOLE_ERRORS = 50

    def __init__(self, bound: Bound, sink: Sink, rejected: RejectedFile | None, width: int,
                 progress: Callable[[int], None] = lambda n: None, workers: int | None = None):
        self.workers = default_workers() if workers is None else workers
        self.bound = bound
        self.sink = sink
        self.rejected = rejected
        self.width = width
        self.progress = progress
        self.summary = Summary()
        self.seen = SeenOrders()

    def run(self, rows: Iterable[Row]) -> Summary:
        try:
            orders = self._orders(rows)
            if hasattr(self.sink, "add_prepared"):
                self._run_prepared(orders)
            else:
                for key, group in orders:
                    self._one(key, group)
            self.sink.close()
        finally:
            self.seen.close()
            if self.rejected is not None:
                self.rejected.close()
        return self.summary

    def _orders(self, rows: Iterable[Row]) -> Iterator[tuple[str, list[Row]]]:
        """Consecutive rows with the same key form one order (exports keep an order's rows together),
        counted for the summary and the progress bar.

        Rows are padded to at least width + 1 cells: short rows (Excel trims trailing blanks) read as
        blanks, and cell `width` is a blank that stands in for missing columns (Header.position).
        One loop for all of it: this runs for every row of the file, in the process that writes.
        """
        need, key_of, summary = self.width + 1, self.bound.key, self.summary
        current: list[Row] = []
        cur_key, pending = None, 0
        for row in rows:
            cells = row.cells
            if len(cells) < need:
                cells.extend([""] * (need - len(cells)))
            k = key_of(cells)
            if current and (k != cur_key or not k):
                summary.rows += len(current)
                pending += len(current)
                if pending >= 1000:
                    self.progress(pending)
                    pending = 0
                yield cur_key, current
                current = []
            cur_key = k
            current.append(row)
        if current:
            summary.rows += len(current)
            pending += len(current)
            yield cur_key, current
        self.progress(pending)

    def _run_prepared(self, orders: Iterator[tuple[str, list[Row]]]) -> None:
        """Chunks of orders to the workers (or translated here), settled in the order they were read."""
        pick, workers = None, []
        if self.workers:
            # Workers get only the cells the preset reads when it says which (pickling is per cell).
            pick, bound = self.bound.compact() if hasattr(self.bound, "compact") else (None, self.bound)
            workers = [_Worker(bound, pick is not None) for _ in range(self.workers)]
        try:
            in_flight: deque = deque()
            while chunk := list(islice(orders, CHUNK_ORDERS)):
                earlier = iter(self.seen.first_lines([(key, group[0].line) for key, group in chunk if key]))
                shape = [self._shape_errors(key, group, next(earlier) if key else None) for key, group in chunk]
                todo = [None if errors else group for (_, group), errors in zip(chunk, shape)]
                if not workers:
                    self._settle(chunk, shape, _translate_chunk(self.bound, todo))
                    continue
                if pick is not None:
                    todo = [g and [(r.line, _pack(pick(r.cells))) for r in g] for g in todo]
                if len(in_flight) < len(workers):
                    worker = workers[len(in_flight)]
                    worker.send(todo)
                    in_flight.append((chunk, shape, worker))
                    continue
                # Each worker holds one chunk at most (no deadlock). The oldest chunk's worker gets the
                # next chunk as soon as its result is in, before that result is written (the outbox
                # write would otherwise leave it idle); results are still settled in file order.
                done_chunk, done_shape, worker = in_flight.popleft()
                results = worker.receive()
                worker.send(todo)
                in_flight.append((chunk, shape, worker))
                self._settle(done_chunk, done_shape, results)
            while in_flight:
                self._settle(*in_flight.popleft())
        finally:
            for w in workers:
                w.stop()

    def _settle(self, chunk: list[tuple[str, list[Row]]], shape: list[list[CellError]], done) -> None:
        results = done.receive() if isinstance(done, _Worker) else done
        for (_, group), errors, result in zip(chunk, shape, results):
            if errors:
                self._reject(group, errors)
            elif result[0] == "rejected":
                self._reject(group, [CellError(column, reason, line) for column, reason, line in result[1]])
            else:
                _, oid, text, digest, updated_at, notes = result
                self.summary.orders += 1
                for n in notes:
                    self.summary.note(n, group[0].line)
                self.sink.add_prepared(Prepared(oid, text, digest, group[0].line, updated_at))

    def _one(self, key: str, group: list[Row]) -> None:
        errors = self._shape_errors(key, group)
        if errors:
            return self._reject(group, errors)
        try:
            built = self.bound.build(group)
        except OrderRejected as e:
            return self._reject(group, e.errors)
        try:
            wire = validate_to_wire(built.data)
        except InvalidOrder as e:
            return self._reject(group, _schema_errors(e, built, group))
        self.summary.orders += 1
        for n in built.notes:
            self.summary.note(n, group[0].line)
        self.sink.add(wire, group[0].line, built)

    def _shape_errors(self, key: str, group: list[Row], earlier: int | None = -1) -> list[CellError]:
        """Errors of the file's shape; `earlier` is the line where the key first appeared (-1: look it up)."""
        out = []
        col = getattr(self.bound, "key_column", "order id")
        if earlier == -1 and key:
            earlier = self.seen.first_line(key, group[0].line)
        if not key:
            out.append(CellError(col, f"is empty; every row needs the {col} of its order", group[0].line))
        elif earlier is not None:
            out.append(CellError(col, f"order {key} already appeared at line {earlier}: the rows of one order "
                                 f"must be together (sort the file by {col})", group[0].line))
        for row in group:
            cells, w = row.cells, self.width
            # every row is padded to w + 1 cells; only look further when something is beyond the header
            if (len(cells) > w + 1 or cells[w]) and any(c.strip() for c in cells[w:]):
                out.append(CellError("row", f"the row has {len(row.cells)} cells but the header has {self.width} "
                                     "(an unquoted delimiter inside a value?)", row.line))
        return out

    def _reject(self, group: list[Row], errors: list[CellError]) -> None:
        s = self.summary
        s.rejected_orders += 1
        s.rejected_rows += len(group)
        s.error_count += len(errors)
        room = self.MAX_CONSOLE_ERRORS - len(s.errors)
        if room > 0:
            s.errors += errors[:room]
        if self.rejected is None:
            return
        by_line: dict[int, list[str]] = {}
        for e in errors:
            by_line.setdefault(e.line or group[0].line, []).append(f"{e.column}: {e.reason}")
        first = errors[0]
        sibling = f"rejected with its order (line {first.line}, {first.column}: {first.reason})"
        messages = {r.line: "; ".join(by_line[r.line]) if r.line in by_line else sibling for r in group}
        self.rejected.write(group, messages)
        s.rejected_file = self.rejected.path
