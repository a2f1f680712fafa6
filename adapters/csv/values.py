"""Reading cell values (money, quantities, dates, ids) with errors that name the column and the problem."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import ConfigError


class CellError(ValueError):
    """One bad cell: the column it is in and what is wrong with it."""

    def __init__(self, column: str, reason: str, line: int | None = None):
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason
        self.line = line


_SPREADSHEET_NUMBER = re.compile(r"^\d(?:[.,]\d+)?E\+?\d+$", re.IGNORECASE)


def spreadsheet_mangled(text: str) -> bool:
    """`1.67188E+13`: a long id or phone that a spreadsheet turned into a rounded number (digits lost)."""
    return bool(_SPREADSHEET_NUMBER.match(text))


def not_rounded(text: str, column: str, what: str) -> str:
    """`text`, unless a spreadsheet turned it (a long id, SKU or phone) into a rounded number such as 1.67188E+13.
    Spreadsheets always write the `+`, and only for a number whose digits do not fit the 6 significant digits
    they keep (a million or more): product codes such as `2E4` or `1E+3` are left alone."""
    if "E+" in text.upper() and spreadsheet_mangled(s := text.strip()) and int(s.upper().rpartition("E+")[2]) >= 6:
        raise CellError(column, f"{show(text.strip())}: a spreadsheet turned the {what} into a rounded number (its "
                        "digits are lost); export again and import without opening the file in a spreadsheet, "
                        "or format the column as text")
    return text


def show(text: str, width: int = 40) -> str:
    """A cell quoted for a message, shortened with an ASCII "...": messages go into the rejected-rows report,
    written in the input's own encoding, which may lack "…" (latin-1, ISO 8859-15)."""
    return repr(text if len(text) <= width else text[:width] + "...")


_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})


def money(text: str, column: str, *, decimal_sep: str = ".", thousands_sep: str = "") -> Decimal:
    """A non-negative amount such as `1500.00`, `1 234,50` (with separators given) or `163056`."""
    raw = text.strip()
    if not raw:
        raise CellError(column, "is empty; expected an amount")
    if thousands_sep == " ":
        raw = raw.translate(_SPACES)      # what locales group digits with: no-break and narrow no-break spaces
    if thousands_sep and thousands_sep in raw:
        raw = _ungroup(raw, text, column, thousands_sep, decimal_sep)
    if decimal_sep != ".":
        if "." in raw:
            raise CellError(column, f"not a number with decimal separator {decimal_sep!r}: {show(text)}")
        raw = raw.replace(decimal_sep, ".")
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise CellError(column, f"not a number: {show(text)}") from None
    if not d.is_finite():
        raise CellError(column, f"not a finite number: {show(text)}")
    if d < 0:
        raise CellError(column, f"must not be negative: {show(text)}")
    return d


def _ungroup(raw: str, text: str, column: str, thousands_sep: str, decimal_sep: str) -> str:
    """Drop thousands separators, but only where they group by three (else `5.00` would read as 500)."""
    whole, _, _ = raw.partition(decimal_sep)
    groups = whole.lstrip("-").split(thousands_sep)
    if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
        raise CellError(column, f"not a number with thousands separator {thousands_sep!r} and decimal "
                        f"separator {decimal_sep!r}: {show(text)}")
    return raw.replace(thousands_sep, "")


def optional_money(text: str, column: str, **kw) -> Decimal | None:
    return money(text, column, **kw) if text.strip() else None


def quantity(text: str, column: str, **kw) -> Decimal:
    if not text.strip():
        raise CellError(column, "is empty; a line item needs a quantity")
    q = money(text, column, **kw)
    if q == 0:
        raise CellError(column, "must be more than 0")
    return q


def zone(name: str | None, where: str) -> tzinfo | None:
    """An IANA time zone for dates written without an offset (None when not configured)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


class DateReader:
    """Dates in one format (strptime, or ISO 8601 when none is given); naive ones take `tz`.

    `guessed` tells whether the last date had no offset and no zone was configured (read as
    UTC), so the preset can add a warning instead of silently guessing.
    """

    def __init__(self, fmt: str | None = None, tz: tzinfo | None = None):
        self.fmt = fmt
        self.tz = tz
        self.guessed = False

    def __call__(self, text: str, column: str) -> datetime:
        raw = text.strip()
        if not raw:
            raise CellError(column, "is empty; expected a date")
        try:
            dt = datetime.strptime(raw, self.fmt) if self.fmt else datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            want = f"the format {self.fmt!r}" if self.fmt else "ISO 8601 (2026-04-05T21:06:21+04:00)"
            raise CellError(column, f"not a date in {want}: {show(raw)}") from None
        self.guessed = dt.tzinfo is None and self.tz is None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.tz or timezone.utc)
        return dt


_OFFSETS: dict[str, tzinfo] = {}


def fixed_offset(text: str) -> tzinfo:
    """`+0400` / `-0530` → a fixed tzinfo (cached: an export has a handful of offsets)."""
    tz = _OFFSETS.get(text)
    if tz is None:
        if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
            raise ValueError(text)
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        tz = _OFFSETS[text] = timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
    return tz


def _shopify_date(s: str) -> datetime | None:
    """`2026-04-05 21:06:21 +0400` (stripped), parsed in C; None for anything else."""
    if len(s) == 25 and s[4] == "-" and s[7] == "-" and s[10] == " " and s[19] == " ":
        try:
            local = datetime.fromisoformat(s[:19])
            # combine(), not replace(tzinfo=...): the same datetime, at a fifth of the cost
            return datetime.combine(local.date(), local.time(), fixed_offset(s[20:]))
        except ValueError:
            pass
    return None


def offset_date(text: str, column: str, slow: "DateReader") -> datetime:
    """`2026-04-05 21:06:21 +0400` (Shopify's export format) in C; strptime is ~10x slower and an import
    parses several dates per order. Anything else goes to `slow`, which names the problem."""
    s = text.strip()
    dt = _shopify_date(s)
    return dt if dt is not None else slow(s, column)


def offset_date_iso(text: str) -> tuple[datetime, str] | None:
    """offset_date for the common case, with the date's isoformat() (written by slicing, then parsed);
    None where that text would not be isoformat()'s (then: offset_date and isoformat())."""
    s = text.strip()
    if len(s) == 25 and s[4] == "-" and s[7] == "-" and s[10] == " " and s[13] == ":" and s[16] == ":" \
            and s[19] == " " and s[20] in "+-" and s[23] in "012345" and s[20:] != "-0000":
        iso = f"{s[:10]}T{s[11:19]}{s[20:23]}:{s[23:]}"
        try:
            return datetime.fromisoformat(iso), iso
        except ValueError:
            return None
    return None


def split_name(full: str) -> tuple[str | None, str | None]:
    """`Jane Q Doe` → (`Jane`, `Q Doe`); Shopify's `-` last-name placeholder is dropped."""
    parts = full.strip().split(None, 1)
    if not parts:
        return None, None
    last = parts[1].strip() if len(parts) > 1 else None
    return parts[0], (last if last and last != "-" else None)


def join_address(parts: list[str]) -> str | None:
    """Address parts joined by ', ', dropping blanks, `-` placeholders and Excel's leading apostrophe."""
    clean = [p.strip().lstrip("'") for p in parts]
    text = ", ".join(p for p in clean if p and p != "-")
    return text or None
