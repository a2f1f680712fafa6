"""What every preset shares: header look-up by name, the built order, and the money rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Callable, Iterable, Protocol, Sequence

from adapters.csv.reader import CsvUnreadable, Row
from adapters.csv.values import CellError, show


class Header:
    """Columns by name, never by position; unknown columns are ignored, missing ones read as ''.

    The importer pads every row to at least `width + 1` cells, so cell `width` is always a blank:
    a missing column reads from there, and look-ups need no length checks on the hot path.
    """

    def __init__(self, names: Sequence[str]):
        self.names = [n.replace("\ufeff", "").strip() for n in names]
        self.width = len(self.names)
        self.index: dict[str, int] = {}
        for i, n in enumerate(self.names):
            self.index.setdefault(n, i)

    def __contains__(self, name: str) -> bool:
        return name in self.index

    def position(self, name: str) -> int:
        """The column's index, or the always-blank pad cell when the column is missing."""
        return self.index.get(name, self.width)

    def picker(self, names: Sequence[str]) -> Callable[[list[str]], tuple[str, ...]]:
        """One C-level call that takes the named cells of a (padded) row, in the order given."""
        return itemgetter(*[self.position(n) for n in names]) if len(names) > 1 else \
            (lambda cells, i=self.position(names[0]): (cells[i],))

    def getter(self, name: str) -> Callable[[list[str]], str]:
        i = self.index.get(name)
        if i is None:
            return lambda cells: ""
        return lambda cells: cells[i] if i < len(cells) else ""

    def require(self, needed: Sequence[str], what: str) -> None:
        missing = [n for n in needed if n not in self.index]
        if not missing:
            return
        hint = ""
        if len(self.names) == 1 and any(d in self.names[0] for d in ";\t|"):
            hint = "; the header is one cell: is the delimiter ';' or tab? use --delimiter"
        raise CsvUnreadable(f"not a {what}: the header lacks {', '.join(repr(m) for m in missing)}{hint}")


class OrderRejected(Exception):
    """The rows of one order cannot make an order; every error names its line and column."""

    def __init__(self, errors: list[CellError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class Built:
    """An order read from its rows, before the add-orders schema validates it."""

    data: dict                                  # add-orders fields (Decimal, datetime and str values)
    columns: dict[str, str]                     # add-orders field → the column it came from (for errors)
    source_updated_at: datetime | None = None   # latest timestamp the rows show (stale check in the outbox)
    notes: list[str] = field(default_factory=list)   # warnings counted in the summary


class Bound(Protocol):
    """A preset bound to a file's header: groups rows into orders and builds each order."""

    label: str

    def key(self, cells: list[str]) -> str: ...

    def build(self, rows: list[Row]) -> Built: ...


class Collector:
    """Gathers cell errors of one order (with their lines) instead of stopping at the first."""

    def __init__(self):
        self.errors: list[CellError] = []

    def run(self, line: int, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except CellError as e:
            e.line = line
            self.errors.append(e)
            return None

    def add(self, line: int, column: str, reason: str) -> None:
        self.errors.append(CellError(column, reason, line))

    def raise_if_any(self) -> None:
        if self.errors:
            raise OrderRejected(self.errors)


def check_consistent(c: Collector, rows: list[Row], columns: Iterable[tuple[str, Callable[[list[str]], str]]]) -> None:
    """A later row of an order may leave an order-level cell blank or repeat it, never contradict the
    first row: each (column, getter) that does is reported on the later row's line."""
    first = rows[0]
    for col, get in columns:
        want = get(first.cells).strip()
        for row in rows[1:]:
            got = get(row.cells).strip()
            if got and got != want:
                c.add(row.line, col, f"inconsistent with line {first.line} of the same order: "
                      f"{show(got)} here, {show(want)} there")


def one_row_only(c: Collector, rows: list[Row], column: str, key: str, layout: str) -> None:
    """In a layout of one row per order, the later rows of an order (consecutive rows with its key) would be
    read by nobody: each is reported on its own line instead of being dropped."""
    for row in rows[1:]:
        c.add(row.line, column, f"order {key} already has a row at line {rows[0].line}, and {layout}")


def allocate_discount(nets: list[Decimal], discount: Decimal) -> list[Decimal]:
    """Spread an order-level discount over line totals in proportion to them (the last takes the rest)."""
    base = sum(nets)
    if discount <= 0 or base <= 0:
        return nets
    out, left = [], discount
    for i, net in enumerate(nets):
        share = left if i == len(nets) - 1 else (discount * net / base)
        left -= share
        out.append(max(net - share, Decimal(0)))
    return out


def reconciles(total: Decimal, lines: Decimal, shipping: Decimal | None, taxes: Decimal | None,
               n_items: int, minor: Decimal) -> bool:
    """Σ cost × quantity + shipping (+ taxes when prices exclude them) = total, within rounding."""
    slack = minor * max(n_items, 1)
    base = lines + (shipping or 0)
    return abs(base - total) <= slack or abs(base + (taxes or 0) - total) <= slack
