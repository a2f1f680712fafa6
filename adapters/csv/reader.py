"""Streaming CSV reading: encoding checks, physical line numbers, one row at a time.

A row is reported by the physical line it starts on (the header is line 1), so a cell with
quoted newlines (Shopify `Note Attributes`) does not shift the numbers of the rows after it.
"""
from __future__ import annotations

import codecs
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from connector.errors import OrderbridgeError

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# The decoding check's blocks: their text (up to 4 bytes a byte) is thrown away at once; at a megabyte each
# took fresh memory from the system, and the page faults cost more than the decoding (0.33 s against 0.15 s
# for a 256 MB file).
_SCAN_BLOCK = 1 << 16
# Shopify's Note Attributes and WooCommerce's line_item_N cells can be long; csv's 128 KiB default is not enough.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class CsvUnreadable(OrderbridgeError):
    """The file cannot be read on (missing, wrong encoding, no usable header, a row csv cannot parse): exit 2.
    Raised before anything is imported, except for a row the parser refuses further on: what came before
    it is imported (a re-run after the fix enqueues nothing twice)."""


class Undecodable(CsvUnreadable):
    """A byte the codec refuses, met while reading the rows (the whole-file check names it more exactly)."""


class Row(NamedTuple):
    line: int                 # physical line the row starts on; the header is line 1
    cells: list[str]


@dataclass(frozen=True)
class Dialect:
    encoding: str             # the codec actually used (a BOM decides over the one asked for)
    delimiter: str
    bom: bool


def sniff_encoding(path: Path, asked: str | None) -> tuple[str, bool]:
    """The codec to read with: a BOM wins; else the one asked for; else UTF-8 (checked first)."""
    with open(path, "rb") as f:
        head = f.read(4)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, True
    return (asked or "utf-8"), False


def line_count(data: bytes, end: int | None = None) -> int:
    """Physical lines in `data[:end]` as a text file opened with newline='' counts them (\\n, \\r\\n and \\r)."""
    end = len(data) if end is None else end
    lf = data.count(b"\n", 0, end)
    if data.find(b"\r", 0, end) < 0:        # most files: find stops at once where count would scan it all
        return lf
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)


def check_decodable(path: Path, codec: str) -> None:
    """Refuse a file that does not decode with `codec` before anything is imported, naming the first bad
    line and byte (one pass in C; reading it later finds nothing new). Lines are counted only to name
    the bad one: the pass over a good file (every import makes one before its workers start) decodes.

    Exports opened and saved in Excel on Windows are usually cp1252; guessing would silently
    turn `é` into `Ã©` in names, so the user chooses with --encoding.
    """
    try:
        decoder = codecs.getincrementaldecoder(codec)()
    except LookupError:
        raise CsvUnreadable(f"unknown encoding {codec!r} (e.g. utf-8, cp1252, latin-1)") from None
    utf8 = codecs.lookup(codec).name in ("utf-8", "utf-8-sig")
    offset = 0                              # of the block in the file
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_SCAN_BLOCK), b""):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                at = max(0, e.start - pending)
                line = _line_at(path, offset + at)
                if utf8:
                    raise CsvUnreadable(
                        f"{path.name}: line {line} is not UTF-8 (byte 0x{block[at]:02x}); the file was probably "
                        f"saved by Excel on Windows: try --encoding cp1252") from None
                raise CsvUnreadable(f"{path.name}: line {line} cannot be decoded as {codec} (byte 0x{block[at]:02x}); "
                                    "try another --encoding") from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvUnreadable(f"{path.name}: the file ends inside a character ({codec}); "
                                "try another --encoding") from None


def _line_at(path: Path, offset: int) -> int:
    """The physical line (from 1) that byte `offset` of the file is on, read in blocks."""
    lines, cr_before = 0, False             # a \r\n split between two blocks is one line end
    with open(path, "rb") as f:
        while offset > 0 and (block := f.read(min(_SCAN_BLOCK, offset))):
            lines += line_count(block) - (cr_before and block[:1] == b"\n")
            cr_before = block[-1:] == b"\r"
            offset -= len(block)
    return lines + 1


def open_text(path: Path, encoding: str):
    try:
        return open(path, "r", encoding=encoding, newline="")
    except LookupError:
        raise CsvUnreadable(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
    except OSError as e:
        raise CsvUnreadable(f"cannot read {path}: {e.strerror}") from None


def read_rows(reader, name: str, first_line: int = 1) -> Iterator[Row]:
    """The rows of a csv.reader with the physical line each starts on, counted on from where the reader is
    (`first_line` is the line of the reader's own first line: 1 from the start of a file, where the header
    row comes first; another from elsewhere, see `open_text_at`)."""
    base = first_line - 1
    end = base + reader.line_num
    new = tuple.__new__             # Row(...) would be a Python call per row
    try:
        for cells in reader:
            start, end = end + 1, base + reader.line_num
            if cells:
                yield new(Row, (start, cells))
    except (UnicodeDecodeError, csv.Error) as e:
        raise unreadable(e, name, end + 1) from None


def unreadable(e: UnicodeDecodeError | csv.Error, name: str, line: int) -> CsvUnreadable:
    """What csv.reader (or the decoder under it) raised at physical line `line`, for the user."""
    if isinstance(e, UnicodeDecodeError):
        return Undecodable(f"{name}: line {line} cannot be decoded as {e.encoding} "
                           f"(byte 0x{e.object[e.start]:02x}); try another --encoding")
    return CsvUnreadable(f"{name}: line {line}: {e}")


def open_text_at(path: Path, encoding: str, offset: int):
    """The file as text from byte `offset`, which must start a line (for reading the rest of a file)."""
    f = open(path, "rb")
    f.seek(offset)
    if offset and encoding == "utf-8-sig":
        encoding = "utf-8"      # the BOM is behind us
    return io.TextIOWrapper(f, encoding=encoding, newline="")


def normalise_delimiter(value: str | None) -> str:
    if value in (None, ""):
        return ","
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(value.lower(), value)
    if len(value) != 1:
        raise CsvUnreadable(f"--delimiter must be one character (or tab, semicolon, comma, pipe); got {value!r}")
    return value


def open_csv(path: Path, encoding: str | None, delimiter: str | None, check: bool = True) -> tuple[Dialect, object]:
    """Check (unless the caller will: check_decodable) and open the file; returns its dialect and an open text
    handle (the caller closes it)."""
    if not path.is_file():
        raise CsvUnreadable(f"{path}: no such file")
    codec, bom = sniff_encoding(path, encoding)
    if check:
        check_decodable(path, codec)
    if codec.replace("_", "-").lower() in ("utf-8", "utf8"):
        codec = "utf-8-sig"       # also drops a BOM that sniffing did not see
    return Dialect(codec, normalise_delimiter(delimiter), bom), open_text(path, codec)
