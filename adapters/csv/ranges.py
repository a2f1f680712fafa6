"""The file cut into byte ranges that each hold whole orders, so worker processes read and parse their own
range: no row crosses a process boundary (pickling rows cost more than building the orders).

A cut is placed after a newline that ends a record and before a row whose order key differs from
the row above it. Whether a newline ends a record is read from quote parity (an even number of `"`
since the range began), which is what csv.reader does wherever every quote opens, doubles or closes a
quoted cell (any file a csv writer wrote). A bare quote (`12" pizza`) can fool parity, so a range is
trusted only when its text passes that check (quoting_is_plain), and also ends with a sentinel line when
parsed, which comes back as its own row only when the range really ended between records. A range that
fails either, and everything after it, is read again in one process; so is the rest of a file where no
cut can be found (a bare quote near the cut, carriage returns alone, one order of 16 MB).

Only encodings where `\\n` and `"` are single bytes that never occur inside another character (UTF-8,
single-byte code pages) are cut; others (UTF-16) are read in one process.
"""
from __future__ import annotations

import codecs
import csv
import importlib
import io
import itertools
import os
import re
from typing import Callable, Iterator, NamedTuple

from adapters.csv.reader import line_count

TARGET_BYTES = 1 << 20          # a range: about a megabyte, ~500 orders of a Shopify export
MAX_BYTES = 16 << 20            # no cut found in this much: the rest of the file is read in one process
END_MARK = "\x1e\x1forderbridge-range-end\x1f\x1e"


class Range(NamedTuple):
    start: int                  # byte offset of its first row
    end: int                    # byte offset just past its last row
    first_line: int             # the physical line its first row starts on


class Unsplittable(NamedTuple):
    """No cut could be found from here on: read the rest (from `start`, line `first_line`) in one process."""

    start: int
    first_line: int


def splittable(codec: str) -> bool:
    """True for encodings whose newline and quote bytes can only mean newline and quote: UTF-8 and the
    single-byte code pages (their codecs carry a 256-entry decoding table). Not UTF-16, nor multi-byte
    or stateful ones (Shift JIS, ISO-2022-JP, HZ), where those bytes can be part of another character."""
    name = codecs.lookup(codec).name
    if name in ("utf-8", "utf-8-sig", "ascii", "iso8859-1"):
        return True
    try:
        module = importlib.import_module("encodings." + name.replace("-", "_"))
    except ImportError:
        return False
    table = getattr(module, "decoding_table", None)
    return isinstance(table, str) and len(table) == 256 and table[0x0A] == "\n" and table[0x22] == '"'


def data_start(path, bom: int, codec: str, delimiter: str, header: list[str]) -> tuple[int, int] | None:
    """(byte offset, line) of the first line after the header, when the header parses from the bytes as
    `header` (what the text reader saw); None when it cannot be found that way (then: one process)."""
    with open(path, "rb") as f:
        f.seek(bom)
        head = f.read(TARGET_BYTES)
    pos = 0
    while (nl := head.find(b"\n", pos)) >= 0:
        if head.count(b'"', 0, nl) % 2 == 0:
            try:
                text = head[:nl + 1].decode(codec)
            except UnicodeDecodeError:
                return None
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
            if rows:
                return (bom + nl + 1, 1 + line_count(head[:nl + 1])) if rows == [header] else None
        pos = nl + 1
    return None


def ranges(path, start: int, first_line: int, codec: str, delimiter: str,
           key: Callable[[list[str]], str], width: int) -> Iterator[Range | Unsplittable]:
    """Ranges of about TARGET_BYTES from `start` to the end of the file, each ending on an order boundary."""
    with open(path, "rb") as f:
        f.seek(start)
        buf, line = b"", first_line
        while True:
            block = f.read(TARGET_BYTES)
            buf += block
            if not block:
                if buf:
                    yield Range(start, start + len(buf), line)
                return
            if len(buf) < TARGET_BYTES:
                continue
            cut = _order_cut(buf, codec, delimiter, key, width)
            if cut == _BARE_QUOTES:
                yield Unsplittable(start, line)
                return
            if cut is None:
                if len(buf) >= MAX_BYTES:
                    yield Unsplittable(start, line)
                    return
                continue
            yield Range(start, start + cut, line)
            line += line_count(buf, cut)
            start += cut
            buf = buf[cut:]


def _record_ends(buf: bytes, limit: int | None) -> list[int]:
    """Offsets just past the last few newlines of `buf` that end a record (quote parity even from the
    start of `buf`), latest first."""
    out: list[int] = []
    quotes = buf.count(b'"')
    end = len(buf)
    while limit is None or len(out) < limit:
        nl = buf.rfind(b"\n", 0, end)
        if nl < 0:
            break
        quotes -= buf.count(b'"', nl, end)
        if quotes % 2 == 0:
            out.append(nl + 1)
        end = nl
    return out


_BARE_QUOTES = -1


def _order_cut(buf: bytes, codec: str, delimiter: str, key: Callable[[list[str]], str], width: int) -> int | None:
    """An offset in `buf` where a row starts whose order differs from the row above it, near the end; None
    when none is there, _BARE_QUOTES when the rows read to find it may not be the file's rows (the rows
    before the cut are checked again by the worker that reads them; these are the ones after it)."""
    for limit in (64, None):            # the last rows; all of them if those belong to one order
        ends = _record_ends(buf, limit)
        if len(ends) < 2:
            return None
        start, stop = ends[-1], ends[0]
        try:
            text = buf[start:stop].decode(codec)
        except UnicodeDecodeError:
            return None
        if not quoting_is_plain(text, delimiter):
            return _BARE_QUOTES
        offsets = _line_offsets(buf, start, stop)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        cut, before, consumed = None, None, 0
        for cells in reader:
            at, consumed = offsets[consumed], reader.line_num
            if not cells:
                continue
            if len(cells) <= width:
                cells = cells + [""] * (width + 1 - len(cells))
            k = key(cells)
            if not k and not "".join(cells).strip():
                continue            # a blank row parts no order (importer.OrderRows): never cut at one
            if before is not None and (k != before or not k):
                cut = at
            before = k
        if cut is not None:
            return cut
    return None


def _line_offsets(buf: bytes, start: int, stop: int) -> list[int]:
    """Offsets (in buf) where each physical line in buf[start:stop] begins, as newline='' splits lines."""
    out = [start]
    text = buf[start:stop]
    pos = 0
    n = len(text)
    while pos < n:
        nl, cr = text.find(b"\n", pos), text.find(b"\r", pos)
        if cr >= 0 and (nl < 0 or cr < nl):
            pos = cr + 2 if text[cr + 1:cr + 2] == b"\n" else cr + 1
        elif nl >= 0:
            pos = nl + 1
        else:
            break
        out.append(start + pos)
    return out


_QUOTING: dict[str | bytes, re.Pattern] = {}


def quoting_is_plain(text: str | bytes, delimiter: str | bytes) -> bool:
    """True when every `"` in `text` opens a quoted cell (at the start of a cell), doubles a quote inside
    one, or closes one (before a delimiter or the end of a line): then quote parity says exactly where
    csv.reader's records end, and the cut at the end of this text is where the cut finder thought it
    was. A bare quote (`12" pizza`, `5' 10"`, `"a"b`) makes it False. One regular expression, about a
    millisecond a megabyte.

    Bytes are checked as they are (with the delimiter as its one byte) in the encodings that are cut into
    ranges: there `"`, CR, LF and that byte only ever stand for themselves."""
    pattern = _QUOTING.get(delimiter)
    if pattern is None:
        raw = isinstance(delimiter, bytes)
        d = re.escape(delimiter.decode("latin-1") if raw else delimiter)
        source = f'(?:[^"]*(?<![^{d}\\r\\n])"[^"]*(?:""[^"]*)*"(?=[{d}\\r\\n]|$))*[^"]*'
        pattern = _QUOTING[delimiter] = re.compile(source.encode("latin-1") if raw else source, re.S)
    return pattern.fullmatch(text) is not None


def range_reader(data: bytes, codec: str, delimiter: str):
    """A csv.reader over one range's text and then a row holding just END_MARK, which comes back as a row of
    its own only when the range really ended between records; None where the quoting is not plain (a bare
    quote may have fooled the cut, and put it inside an order). Raises UnicodeDecodeError as it reads.

    The text is decoded as csv.reader reads it, a few kilobytes at a time. Decoding a range whole, and the
    copy io.StringIO makes of it (4 bytes a character), cost 3 to 4 ms a megabyte, mostly page faults on
    the fresh memory each range took: a third as much as csv.reader's own work on it."""
    one_byte = _delimiter_byte(codec, delimiter)
    plain = quoting_is_plain(data, one_byte) if one_byte else quoting_is_plain(data.decode(codec), delimiter)
    if not plain:
        return None
    if data and data[-1] not in b"\r\n":
        data += b"\n"
    text = io.TextIOWrapper(io.BytesIO(data), encoding=codec, newline="")
    return csv.reader(itertools.chain(text, (END_MARK + "\n",)), delimiter=delimiter)


def _delimiter_byte(codec: str, delimiter: str) -> bytes | None:
    """The delimiter's byte in `codec` (one of those cut into ranges, see splittable), or None where it takes
    more than one byte (a UTF-8 `§`) or none."""
    try:
        b = delimiter.encode(codec)
    except UnicodeEncodeError:
        return None
    return b if len(b) == 1 else None


def read_range(path, r: Range) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, r.end - r.start, r.start)
    finally:
        os.close(fd)
