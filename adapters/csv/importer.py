"""The import pipeline: rows → orders (grouped as they come) → validated wire orders → a sink.

Memory stays flat whatever the file size: one order's rows are held at a time, and the sink
holds at most one chunk of orders before it commits them.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from connector.format import InvalidOrder, order_to_wire, parse_order

from adapters.csv.presets.base import Bound, Built, OrderRejected
from adapters.csv.reader import CsvUnreadable, Dialect, Row
from adapters.csv.seen import SeenOrders
from adapters.csv.values import CellError

ERROR_COLUMN = "import error"


class Sink(Protocol):
    def add(self, wire: dict, line: int, built: Built) -> None: ...

    def close(self) -> None: ...


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


def groups(rows: Iterable[Row], key: Callable[[list[str]], str]) -> Iterator[tuple[str, list[Row]]]:
    """Consecutive rows with the same key form one order (exports keep an order's rows together)."""
    current: list[Row] = []
    cur_key = None
    for row in rows:
        k = key(row.cells)
        if current and (k != cur_key or not k):
            yield cur_key, current
            current = []
        cur_key = k
        current.append(row)
    if current:
        yield cur_key, current


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
                 progress: Callable[[int], None] = lambda n: None):
        self.bound = bound
        self.sink = sink
        self.rejected = rejected
        self.width = width
        self.progress = progress
        self.summary = Summary()
        self.seen = SeenOrders()

    def run(self, rows: Iterable[Row]) -> Summary:
        pending = 0
        try:
            for key, group in groups(self._padded(rows), self.bound.key):
                self.summary.rows += len(group)
                pending += len(group)
                if pending >= 1000:
                    self.progress(pending)
                    pending = 0
                self._one(key, group)
            self.progress(pending)
            self.sink.close()
        finally:
            self.seen.close()
            if self.rejected is not None:
                self.rejected.close()
        return self.summary

    def _padded(self, rows: Iterable[Row]) -> Iterator[Row]:
        """Rows with at least width + 1 cells: short rows (Excel trims trailing blanks) read as blanks,
        and cell `width` is a blank that stands in for missing columns (Header.position)."""
        need = self.width + 1
        for row in rows:
            cells = row.cells
            if len(cells) < need:
                cells.extend([""] * (need - len(cells)))
            yield row

    def _one(self, key: str, group: list[Row]) -> None:
        errors = self._shape_errors(key, group)
        if errors:
            return self._reject(group, errors)
        try:
            built = self.bound.build(group)
        except OrderRejected as e:
            return self._reject(group, e.errors)
        try:
            wire = order_to_wire(parse_order(built.data))
        except InvalidOrder as e:
            return self._reject(group, _schema_errors(e, built, group))
        self.summary.orders += 1
        for n in built.notes:
            self.summary.note(n, group[0].line)
        self.sink.add(wire, group[0].line, built)

    def _shape_errors(self, key: str, group: list[Row]) -> list[CellError]:
        out = []
        col = getattr(self.bound, "key_column", "order id")
        if not key:
            out.append(CellError(col, f"is empty; every row needs the {col} of its order", group[0].line))
        elif (earlier := self.seen.first_line(key, group[0].line)) is not None:
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
