"""The import pipeline: rows → orders (grouped as they come) → validated wire orders → a sink.

Memory stays flat whatever the file size: a few ranges of the file (about a megabyte each) and one
chunk of orders for the sink are held at a time.

For the outbox (a sink with `add_prepared`) the file is cut into byte ranges on order boundaries
(adapters/csv/ranges.py), and forked worker processes each read, parse, check, build, validate and
serialise whole ranges; the main process settles the ranges in file order: it catches an order whose
rows are split across the file and writes the rejected-rows report, then tells the worker holding the
range's orders to write them to the outbox, in file order too. Otherwise (a dry run, a UTF-16 file,
--workers 0, one CPU) everything happens in this process, row by row; both give the same import, to the
byte.
"""
from __future__ import annotations

import codecs
import csv
import gc
import multiprocessing
import os
import pickle
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from hashlib import sha256
from itertools import islice
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Protocol

try:
    import fcntl
except ImportError:             # not on Unix: no fork either, so no workers
    fcntl = None

from connector.format import InvalidOrder, validate_to_canonical, validate_to_wire
from connector.outbox import EnqueueResult

from adapters.csv.presets.base import Bound, Built, OrderRejected
from adapters.csv.ranges import END_MARK, Range, Unsplittable, range_reader, ranges, read_range
from adapters.csv.reader import CsvUnreadable, Dialect, Row, open_text_at, unreadable
from adapters.csv.seen import SeenOrders
from adapters.csv.values import CellError

ERROR_COLUMN = "import error"


class Sink(Protocol):
    """Where orders go. A sink may also take them prepared (the outbox): `add_prepared(order id, canonical
    JSON, its sha256 hex, first line, updated_at)`; the file is then read by worker processes, which
    write them themselves: `prepared(...)` (the same arguments) makes a version, `in_worker()` is called
    once a worker is forked, and `write_here(versions)` writes them there."""

    def add(self, wire: dict, line: int, built: Built) -> None: ...

    def close(self) -> None: ...


GC_THRESHOLD = 50_000       # container objects in the collector's first generation (CPython: 700)
CHUNK_ORDERS = 100          # orders settled at a time in one process (one look-up of earlier keys)
EVERY_ORDERS = 64           # a worker looks for a write to make every so many orders (see _TurnWriter)


def default_workers() -> int:
    """Worker processes for an import: one per CPU the process may use (the main process mostly waits on
    them and on the database); 0 (everything in this process) on one CPU or where processes cannot be forked."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return min(n, 8) if n > 1 and "fork" in multiprocessing.get_all_start_methods() else 0


def translate(bound: Bound, rows: list[Row], nul_free: bool = False) -> tuple:
    """One order's rows → ("ok", id, canonical JSON, hash, updated_at, notes) or ("rejected", errors).

    Errors travel as (column, reason, line) tuples: CellError does not survive pickling.
    A preset that can write a usual order's canonical JSON straight from its cells (`fast_canonical`)
    does so; everything else is built and validated. `nul_free`: the caller knows no cell holds NUL.
    """
    fast = getattr(bound, "fast_canonical", None)
    if fast is not None and (done := fast(rows, nul_free)) is not None:
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


def in_utc(updated_at: datetime | None) -> datetime | None:
    """An order's updated_at in UTC (its tzinfo then pickles once per range, not once per order); None
    when it has no UTC time (9999-12-31 23:30 -0100): a date no export really holds must not stop the
    import, and without it the version is simply not compared by date."""
    if updated_at is None:
        return None
    try:
        return updated_at.astimezone(timezone.utc)
    except OverflowError:
        return None


class BlankRows:
    """Rows with no cell filled (a spreadsheet saves `,,,,` lines after the data, or between blocks): not
    orders, so not rejected; skipped and counted, so the summary's rows still add up."""

    def __init__(self) -> None:
        self.count = 0
        self.first_line: int | None = None

    def add(self, line: int) -> None:
        self.count += 1
        if self.first_line is None or line < self.first_line:
            self.first_line = line


def is_blank(cells: list[str]) -> bool:
    return not any(cells) or not "".join(cells).strip()


class OrderRows:
    """The orders of a csv.reader's rows: consecutive rows with the same key form one order (exports keep an
    order's rows together); a row with no key is an order of its own (and rejected as such), unless no cell
    of it is filled: it is counted in `blank` and skipped (and does not part the rows around it).

    Each row is read with the physical line it starts on, counted on from where the reader is (`first_line`
    is the line of the reader's own first line). Reading, numbering and grouping are one loop: a generator
    per row for each would cost half as much again as csv.reader itself.

    Rows are padded to at least width + 1 cells: short rows (Excel trims trailing blanks) read as
    blanks, and cell `width` is a blank that stands in for missing columns (Header.position).

    `end_mark`: a row holding just this text ends the reading and sets `ended` (the sentinel of a range,
    ranges.range_reader).
    """

    def __init__(self, reader, key_of: Callable[[list[str]], str], width: int, blank: BlankRows, name: str,
                 first_line: int = 1, end_mark: str | None = None):
        self.reader, self.key_of, self.width, self.blank, self.name = reader, key_of, width, blank, name
        self.first_line, self.end_mark = first_line, end_mark
        self.ended = False

    def __iter__(self) -> Iterator[tuple[str, list[Row]]]:
        reader, key_of, blank, end_mark = self.reader, self.key_of, self.blank, self.end_mark
        need = self.width + 1
        new = tuple.__new__             # Row(...) would be a Python call per row
        current: list[Row] = []
        cur_key = None
        base = self.first_line - 1
        end = base + reader.line_num
        try:
            for cells in reader:
                start, end = end + 1, base + reader.line_num
                if len(cells) < need:
                    if not cells:
                        continue
                    if cells[0] == end_mark and len(cells) == 1:
                        self.ended = True
                        break
                    cells.extend([""] * (need - len(cells)))
                k = key_of(cells)
                if not k and is_blank(cells):
                    blank.add(start)
                    continue
                if current and (k != cur_key or not k):
                    yield cur_key, current
                    current = []
                cur_key = k
                current.append(new(Row, (start, cells)))
        except (UnicodeDecodeError, csv.Error) as e:
            raise unreadable(e, self.name, end + 1) from None
        if current:
            yield cur_key, current


def row_errors(group: list[Row], width: int) -> list[CellError]:
    """Rows with cells beyond the header (an unquoted delimiter inside a value, usually)."""
    out = []
    for row in group:
        cells = row.cells
        # every row is padded to width + 1 cells; only look further when something is beyond the header
        if (len(cells) > width + 1 or cells[width]) and any(c.strip() for c in cells[width:]):
            out.append(CellError("row", f"the row has {len(cells)} cells but the header has {width} "
                                 "(an unquoted delimiter inside a value?)", row.line))
    return out


def key_errors(key: str, line: int, column: str, earlier: int | None) -> list[CellError]:
    """The order key's own errors: empty, or seen before at line `earlier` (the order's rows are split)."""
    if not key:
        return [CellError(column, f"is empty; every row needs the {column} of its order", line)]
    if earlier is not None:
        # The rows at `earlier` were taken as the whole order (perhaps sent already): these rows alone cannot
        # be imported as a fix, the order must come in again whole.
        return [CellError(column, f"order {key} already appeared at line {earlier}: the rows of one order "
                          f"must be together, and those were taken as the whole order; put these rows with them "
                          f"(sort the file by {column}) and import the whole file again (unchanged orders are "
                          "skipped, this one is then sent complete)", line)]
    return []


_END = Unsplittable(-1, -1)      # marks the end of the ranges (nothing left for one process)


class _Failure(NamedTuple):
    traceback: str
    error: BaseException | None = None      # raised again in the main process where it pickles (a database
                                            # error is then reported as one, not as a worker's bug)


class _RangeResult(NamedTuple):
    """What a worker made of one range."""

    rows: int
    aligned: bool               # False: the range did not end between records (see ranges.py); redo in one process
    orders: list[tuple]         # per order, flat (pickling is per object): a translated order is (key, first line,
                                # notes), its version kept by the worker; a rejected one is
                                # (key, first line, rows, row errors, translation errors)
    blank: BlankRows | None = None  # the rows with no cell filled (counted in `rows`)


class _Write(NamedTuple):
    """Main process → worker: write the versions kept for the range at `start`, except the translated orders
    at these places (orders whose rows turned out to be split across the file). Writes are numbered in
    file order (`turn`), and made in that order whichever worker holds them."""

    turn: int
    start: int
    skip: tuple[int, ...] = ()


class _Written(NamedTuple):
    result: EnqueueResult


Prepare = Callable[[str, str, str, int, "datetime | None"], object]


def work_range(bound: Bound, path: Path, r: Range, codec: str, delimiter: str, width: int,
               prepare: Prepare, every: Callable[[], None] = lambda: None) -> tuple[_RangeResult, list]:
    """Read, parse, group, check and translate the orders of one range (in a worker process). Returns the
    result for the main process, and what `prepare(order id, canonical JSON, hash, first line, updated_at
    in UTC)` made of each translated order, in order: the worker writes those itself (see _serve).
    `every` is called every EVERY_ORDERS orders."""
    data = read_range(path, r)
    try:
        reader = range_reader(data, codec, delimiter)
    except UnicodeDecodeError:
        reader = None               # a byte the codec refuses: read in one process, which names its line
    if reader is None:              # (or a bare quote): this range and the rest, in one process
        return _RangeResult(0, False, []), []
    # orders are translated as their rows are read; if the range turns out not to end between records,
    # all of it is thrown away and read again in one process
    orders, kept, nul_free = [], [], b"\x00" not in data     # the encodings cut into ranges write NUL as a 0 byte
    blank, rows = BlankRows(), 0
    groups = OrderRows(reader, bound.key, width, blank, path.name, r.first_line, END_MARK)
    try:
        for n, (key, group) in enumerate(groups, 1):
            if not n % EVERY_ORDERS:
                every()
            rows += len(group)
            errors = row_errors(group, width)
            done = None if errors or not key else translate(bound, group, nul_free)
            line = group[0].line
            if done is not None and done[0] == "ok":
                _, oid, text, digest, updated_at, notes = done
                orders.append((key, line, notes))
                kept.append(prepare(oid, text, digest, line, in_utc(updated_at)))
            else:
                orders.append((key, line, group, [(e.column, e.reason, e.line) for e in errors],
                               done[1] if done else []))
    except CsvUnreadable:
        pass        # a row csv.reader refuses, or a byte the codec does (the text is decoded as it is read):
                    # read again in one process, which reports it with its line (import_file, Undecodable)
    if not groups.ended:
        return _RangeResult(0, False, []), []
    return _RangeResult(rows + blank.count, True, orders, blank=blank if blank.count else None), kept


def _serve(bound: Bound, sink, turn, tasks, writes, results, theirs: list, path: Path, codec: str, delimiter: str,
           width: int) -> None:
    """A worker's loop until None (or the main process is gone): a range in, its result out, its versions
    kept; a _Write in, those versions written to the sink's database here, when it is their turn (the
    canonical JSON never crosses a pipe: moving it to the main process cost as much as writing it),
    _Written out.

    Writes come on a pipe of their own and go before ranges, so the worker whose turn it is writes as soon
    as it is done with the range in hand; the other translates its next range meanwhile, and waits only
    when it has no range to work on.

    A bug here must not pass for a clean import: its traceback goes back and the main process raises it.
    """
    # The fork copied the main process's ends of this worker's pipes and of every earlier worker's: while
    # a copy stays open here, a killed main process would leave this worker waiting on its pipes forever.
    for conn in theirs:
        conn.close()
    sink.in_worker()
    # What the fork inherited lives as long as the worker: the collector need not walk it again and
    # again (that walk also copies the shared pages it touches). A range's rows and results die together:
    # a larger first generation lets most of them go before the collector examines them.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)
    writer = _TurnWriter(sink, turn, writes, results)
    try:
        while True:
            try:
                writer.due()
                if not tasks.poll():
                    # nothing to translate: wait for a task (or, with a write waiting for the other worker's
                    # turn, look again soon)
                    wait([tasks, writes], timeout=0.001 if writer.ready else None)
                    continue
                if (task := tasks.recv()) is None:
                    return
                result, writer.kept[task.start] = work_range(bound, path, task, codec, delimiter, width,
                                                             sink.prepared, writer.due)
                results.send(result)
            except Exception as e:
                results.send(_Failure(traceback.format_exc(), e if _pickles(e) else None))
                return
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass


class _TurnWriter:
    """A worker's versions waiting to be written, and the writes it was told to make (see _serve)."""

    def __init__(self, sink, turn, writes, results):
        self.sink, self.turn, self.writes, self.results = sink, turn, writes, results
        self.kept: dict[int, list] = {}                 # range start → its versions, until written
        self.ready: deque[tuple[int, list]] = deque()   # (turn, versions) to write, in turn order

    def due(self) -> None:
        """Take the writes told since the last look; make those whose turn it is. Called between ranges and
        every few orders within one, so the other worker seldom waits for this one's turn to pass."""
        while self.writes.poll():
            w = self.writes.recv()
            versions = self.kept.pop(w.start)
            if w.skip:
                skip = set(w.skip)
                versions = [v for i, v in enumerate(versions) if i not in skip]
            self.ready.append((w.turn, versions))
        ready = self.ready
        while ready and ready[0][0] == self.turn.value:
            versions = ready.popleft()[1]
            written = self.sink.write_here(versions) if versions else EnqueueResult()
            self.turn.value += 1                # only the worker whose turn it is writes it
            self.results.send(_Written(written))


def _pickles(e: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:           # noqa: BLE001 - any failure to pickle or unpickle it
        return False


class _Worker:
    """A forked process working through ranges in the order it is given them, and writing what it made of
    them when told to; it inherits the bound preset (lambdas do not pickle) and the sink. Plain pipes, no
    helper threads; results come back on a pipe of a megabyte (where the system allows), so a worker
    seldom waits for the main process to read."""

    PIPE_BYTES = 1 << 20

    def __init__(self, bound: Bound, sink, turn, path: Path, codec: str, delimiter: str, width: int,
                 others: Iterable["_Worker"] = ()):
        ctx = multiprocessing.get_context("fork")
        tasks_out, tasks_in = ctx.Pipe(duplex=False)
        writes_out, writes_in = ctx.Pipe(duplex=False)
        results_out, results_in = ctx.Pipe(duplex=False)
        theirs = [tasks_in, writes_in, results_out] + [c for w in others for c in (w.tasks, w.writes, w.results)]
        try:
            fcntl.fcntl(results_in.fileno(), fcntl.F_SETPIPE_SZ, self.PIPE_BYTES)
        except (AttributeError, OSError):
            pass                        # not Linux, or above the system's limit: a smaller pipe still works
        self.process = ctx.Process(target=_serve, args=(bound, sink, turn, tasks_out, writes_out, results_in, theirs,
                                                        path, codec, delimiter, width), daemon=True)
        self.process.start()
        for conn in (tasks_out, writes_out, results_in):
            conn.close()
        self.sink = sink
        self.tasks, self.writes, self.results = tasks_in, writes_in, results_out
        self.ranges = 0                 # ranges sent, results not yet received
        self.writing = 0                # writes sent, not yet done
        self.received: deque[_RangeResult] = deque()
        self.failed = False             # it sent a failure, or died

    @property
    def pending(self) -> int:
        return self.ranges + self.writing

    def send(self, r: Range) -> None:
        self._send(self.tasks, r)
        self.ranges += 1

    def write(self, w: _Write) -> None:
        self._send(self.writes, w)
        self.writing += 1

    def _send(self, conn, task) -> None:
        try:
            conn.send(task)
        except (BrokenPipeError, ConnectionResetError):
            raise self._died() from None

    def _died(self) -> RuntimeError:
        self.failed = True
        self.process.join(timeout=1)
        return RuntimeError(f"an import worker process died (exit code {self.process.exitcode})")

    def receive(self) -> None:
        """Take the next result off the pipe (waiting for it): a range's into `received`, a write's counts
        into the sink's."""
        try:
            result = self.results.recv()
        except EOFError:
            raise self._died() from None
        if isinstance(result, _Failure):
            self.failed = True
            if result.error is not None:
                raise result.error
            raise RuntimeError(f"an import worker process failed:\n{result.traceback}")
        if isinstance(result, _Written):
            self.writing -= 1
            self.sink.result += result.result
        else:
            self.ranges -= 1
            self.received.append(result)

    def stop(self) -> None:
        """Ask the worker to finish; one still holding tasks (the import stopped early) is ended at once: a
        write it was making is rolled back with its transaction."""
        if self.pending:
            self.process.terminate()
        else:
            try:
                self.tasks.send(None)
            except OSError:
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        for conn in (self.tasks, self.writes, self.results):
            conn.close()


@dataclass
class Summary:
    rows: int = 0                   # data rows read: those of orders, rejected ones and blank ones
    orders: int = 0                 # orders read without error (handed to the sink)
    blank: BlankRows = field(default_factory=BlankRows)     # rows with no cell filled: skipped
    rejected_rows: int = 0
    rejected_orders: int = 0
    errors: list[CellError] = field(default_factory=list)   # the first few, for the console
    error_count: int = 0
    notes: dict[str, int] = field(default_factory=dict)     # warning → how many orders
    first_note_line: dict[str, int] = field(default_factory=dict)
    rejected_file: Path | None = None
    previous_report: Path | None = None     # an earlier run's report, moved aside (see import_file)

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
        self._fit: Callable[[str], str] = lambda text: text

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
            if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig", "utf-16"):
                # the cells came from this encoding; a message may quote what it cannot hold (a status
                # from the mapping, a typographic character): such a character becomes "?", never a crash
                self._fit = lambda text: text.encode(encoding, "replace").decode(encoding)
        for row in rows:
            # The error sits in its own column; cells beyond the header (the row's fault) follow it.
            extra = row.cells[self.width:]
            while extra and not extra[-1]:
                extra = extra[:-1]         # the importer's padding
            self._w.writerow([row.cells[i] for i in self.keep] + [self._fit(messages[row.line])] + extra)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def rejected_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def previous_rejected_path(path: Path) -> Path:
    """Where the report of the run before is kept: the user may have fixed it in place, as told to. A name
    no file holds yet (`.rejected.previous.csv`, then `.rejected.previous-2.csv`, ...): two runs of the
    original in a row (two dry runs) would otherwise put the second report over the fixed first one."""
    candidate, n = path.with_name(f"{path.stem}.rejected.previous.csv"), 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}.rejected.previous-{n}.csv"), n + 1
    return candidate


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
        self.key_column = getattr(bound, "key_column", "order id")

    def run(self, reader, name: str) -> Summary:
        """Import the rest of a csv.reader of file `name` (the data rows, after the header) in this process."""
        return self._finish(lambda: self._local(reader, name))

    def run_file(self, path: Path, codec: str, delimiter: str, start: int, first_line: int,
                 ready: Callable[[], None] = lambda: None) -> Summary:
        """Import the data rows from byte `start` (line `first_line`) with worker processes, each taking whole
        ranges of the file; what cannot be cut into ranges is imported in this process. `ready()` runs once
        the workers have their first ranges, before anything is written; it may raise (CsvUnreadable)."""
        def work() -> None:
            rest = self._ranges(path, codec, delimiter, start, first_line, ready)
            if rest is not None:
                with open_text_at(path, codec, rest[0]) as f:
                    self._local(csv.reader(f, delimiter=delimiter), path.name, first_line=rest[1])
        return self._finish(work)

    def _finish(self, work: Callable[[], None]) -> Summary:
        try:
            work()
            self.sink.close()
        except BaseException:
            abort = getattr(self.sink, "abort", None)
            if abort is not None:
                abort()         # no writer thread outlives a failed import
            raise
        finally:
            self.seen.close()
            if self.rejected is not None:
                self.rejected.close()
        return self.summary

    # ---- in this process ---------------------------------------------------------------

    def _local(self, reader, name: str, first_line: int = 1) -> None:
        blank = self.summary.blank
        orders = iter(OrderRows(reader, self.bound.key, self.width, blank, name, first_line))
        prepared = hasattr(self.sink, "add_prepared")
        while True:
            blanks_before = blank.count
            chunk = list(islice(orders, CHUNK_ORDERS))
            skipped = blank.count - blanks_before
            self.summary.rows += skipped
            if not chunk:
                self.progress(skipped)
                break
            earlier = iter(self.seen.first_lines([(key, group[0].line) for key, group in chunk if key]))
            for key, group in chunk:
                self.summary.rows += len(group)
                errors = key_errors(key, group[0].line, self.key_column, next(earlier) if key else None)
                errors += row_errors(group, self.width)
                if errors:
                    self._reject(group, errors)
                elif prepared:
                    self._settle(group[0].line, group, translate(self.bound, group))
                else:
                    self._one(group)
            self.progress(skipped + sum(len(group) for _, group in chunk))

    def _one(self, group: list[Row]) -> None:
        """An order for a sink that takes wire orders (the dry run)."""
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

    def _settle(self, line: int, rows: list[Row] | None, result: tuple) -> None:
        if result[0] == "rejected":
            self._reject(rows, [CellError(column, reason, at) for column, reason, at in result[1]])
            return
        _, oid, text, digest, updated_at, notes = result
        self.summary.orders += 1
        for n in notes:
            self.summary.note(n, line)
        self.sink.add_prepared(oid, text, digest, line, in_utc(updated_at))

    # ---- with worker processes, range by range ------------------------------------------

    AHEAD = 4           # ranges handed to each worker ahead of the one it works on (they are busy while
                        # this process checks the encoding, see run_file)

    def _ranges(self, path: Path, codec: str, delimiter: str, start: int, first_line: int,
                ready: Callable[[], None]) -> tuple[int, int] | None:
        """Ranges to the workers, a few ahead each; results taken in as they come (so no worker waits for work)
        and settled in file order, each range then written by the worker that holds it. Returns where to go on
        in this process when the rest cannot be cut, else None."""
        turn = multiprocessing.get_context("fork").RawValue("q", 0)     # the next write to make, in file order
        workers: list[_Worker] = []
        for _ in range(self.workers):
            workers.append(_Worker(self.bound, self.sink, turn, path, codec, delimiter, self.width, workers))
        self._turns = 0
        source = ranges(path, start, first_line, codec, delimiter, self.bound.key, self.width)
        handed: deque[tuple[Range, _Worker]] = deque()     # in file order
        rest: Range | Unsplittable | None = None
        try:
            while True:
                while rest is None:
                    # ranges translated but not written yet count too: they are held in the worker's memory
                    worker = min(workers, key=lambda w: w.pending)
                    if worker.ranges >= self.AHEAD or worker.pending >= 2 * self.AHEAD:
                        break
                    r = next(source, None)
                    if r is None or isinstance(r, Unsplittable):
                        rest = r or _END
                        break
                    worker.send(r)
                    handed.append((r, worker))
                if ready is not None:
                    ready()             # the workers have their first ranges meanwhile
                    ready = None
                if not handed and rest is not None:
                    self._written(workers)
                    return None if rest is _END else (rest.start, rest.first_line)
                # Results ready are taken in. Unless the next range in file order can be settled now, this
                # waits for any worker's result, not for that range's: a worker that is done gets its next
                # ranges at once (waiting for the one behind left it idle, 0.3 to 1.9 s of a 1M-row import).
                settle = bool(handed) and bool(handed[0][1].received)
                for conn in wait([w.results for w in workers if w.pending], timeout=0 if settle else None):
                    next(w for w in workers if w.results is conn).receive()
                while handed and handed[0][1].received:
                    r, worker = handed.popleft()
                    again = self._settle_range(path, codec, delimiter, r, worker.received.popleft(), worker)
                    if again is not None:
                        self._written(workers)
                        return again
        finally:
            self._written(workers, stopping=True)
            for w in workers:
                w.stop()

    @staticmethod
    def _written(workers: list[_Worker], *, stopping: bool = False) -> None:
        """Wait until every write handed to the workers is made (their counts are then in the sink's).

        Writes are made in turn, so once a worker has failed or died, those after its own never will be:
        that failure is raised, or, `stopping` (the import failed already), waiting simply ends. The
        import may have stopped early: the writes handed over are still made, as the writer thread makes
        the chunks handed to it."""
        while any(w.writing for w in workers):
            if any(w.failed or not w.process.is_alive() for w in workers):
                if stopping:
                    return
                dead = next(w for w in workers if w.failed or not w.process.is_alive())
                while True:
                    dead.receive()      # raises its failure, or that it died
            for conn in wait([w.results for w in workers if w.pending], timeout=0.1):
                try:
                    next(w for w in workers if w.results is conn).receive()
                except Exception:
                    if not stopping:
                        raise

    def _settle_range(self, path: Path, codec: str, delimiter: str, r: Range, res: _RangeResult,
                      worker: _Worker) -> tuple[int, int] | None:
        """Check a range's orders against those before it, report its rejected rows, and have the worker that
        holds its versions write them (in file order: ranges are settled in file order)."""
        if not res.aligned:
            return r.start, r.first_line        # a bare quote fooled the cut: this range and the rest, here
        orders, summary = res.orders, self.summary
        earlier = iter(self.seen.first_lines([(o[0], o[1]) for o in orders if o[0]]))
        translated, skip = 0, []
        for order in orders:
            key, line = order[0], order[1]
            seen = next(earlier) if key else None
            if len(order) == 3:             # translated
                if seen is None:
                    summary.orders += 1
                    for n in order[2]:
                        summary.note(n, line)
                else:                       # a valid order whose rows are split across the file: rare
                    skip.append(translated)
                    self._reject(self._rows_again(path, codec, delimiter, r, line),
                                 key_errors(key, line, self.key_column, seen))
                translated += 1
                continue
            _, _, rows, row_errs, errors = order
            if seen is not None or not key:
                errors = key_errors(key, line, self.key_column, seen) + [CellError(*e) for e in row_errs]
            elif row_errs:
                errors = [CellError(*e) for e in row_errs]
            else:
                errors = [CellError(*e) for e in errors]
            self._reject(rows, errors)
        if res.blank is not None:
            summary.blank.count += res.blank.count
            if summary.blank.first_line is None:
                summary.blank.first_line = res.blank.first_line
        worker.write(_Write(self._turns, r.start, tuple(skip)))
        self._turns += 1
        self.summary.rows += res.rows
        self.progress(res.rows)
        return None

    def _rows_again(self, path: Path, codec: str, delimiter: str, r: Range, line: int) -> list[Row]:
        reader = range_reader(read_range(path, r), codec, delimiter)
        return next(group for _, group in OrderRows(reader, self.bound.key, self.width, BlankRows(), path.name,
                                                    r.first_line, END_MARK) if group[0].line == line)

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
