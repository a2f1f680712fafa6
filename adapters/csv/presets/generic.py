"""The generic preset: a TOML mapping file says which column holds which add-orders field.

    layout = "order"                 # one row per order, or "item": one row per line item, an order's rows together
    delimiter = ";"                  # default ","; --delimiter wins
    encoding = "cp1252"              # default UTF-8; --encoding wins
    date_format = "%d.%m.%Y %H:%M"   # strptime format; default ISO 8601
    timezone = "Europe/Kyiv"         # for dates without an offset (--timezone / the shop's timezone win)
    decimal_separator = ","          # default "."
    thousands_separator = " "        # default none

    [columns]                        # add-orders field = column name
    externalOrderId = "Order"
    totalCost = "Total"
    date = "Date"
    status = "State"
    email = "E-mail"
    "additionalInfo.orderNumber" = "Number"

    [items]                          # optional; one item per row
    externalItemId = "SKU"
    quantity = "Qty"
    cost = "Unit price"              # unit price after discounts; or line_total = "Line total"

    [status]                         # value in the file → add-orders status; unlisted values are rejected
    "Paid" = "IN_PROGRESS"

    [defaults]                       # constant values for fields the file lacks ("additionalInfo.<name>" too)
    currency = "UAH"
"""
from __future__ import annotations

import tomllib
from datetime import date, datetime, time
from pathlib import Path

from connector.errors import ConfigError
from connector.format import STATUSES

from adapters.csv.presets import Context
from adapters.csv.presets.base import Built, Collector, Header, check_consistent, one_row_only
from adapters.csv.reader import Row
from adapters.csv.values import DateReader, money, not_rounded, optional_money, quantity, show, zone

ORDER_FIELDS = ("externalOrderId", "totalCost", "status", "date", "currency", "externalCustomerId", "email", "phone",
                "firstName", "lastName", "shipping", "discount", "taxes", "restoreUrl", "statusDescription",
                "storeId", "source", "deliveryMethod", "paymentMethod", "deliveryAddress")
MONEY_FIELDS = ("totalCost", "shipping", "discount", "taxes")
ITEM_FIELDS = ("externalItemId", "quantity", "name", "category", "cost", "line_total", "url", "imageUrl", "description")
REQUIRED = ("externalOrderId", "totalCost", "date", "status", "currency")
# fields whose long digit strings a spreadsheet rounds (1.67188E+13): refused, or orders and contacts would merge
ROUNDED = {"externalOrderId": "order id", "externalCustomerId": "customer id", "phone": "phone"}
UNTIMED = "dates have no UTC offset and no time zone is set: read as UTC (set timezone in the mapping or --timezone)"


def load_mapping(path: Path | None) -> dict:
    if path is None:
        raise ConfigError("the generic preset needs a mapping file (--mapping FILE)")
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mapping file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"mapping file {path} is not valid TOML: {e}") from None
    defaults = raw.get("defaults")
    if isinstance(defaults, dict):      # a TOML date or datetime (date = 2024-01-01T00:00:00Z) as its ISO text
        raw["defaults"] = {k: v.isoformat() if isinstance(v, (datetime, date, time)) else v for k, v in defaults.items()}
    _check_mapping(raw, path)
    return raw


SETTINGS = ("layout", "delimiter", "encoding", "date_format", "timezone", "decimal_separator", "thousands_separator")
TABLES = ("columns", "items", "status", "defaults")


def _check_mapping(raw: dict, path: Path) -> None:
    """Every mistake a mapping file can hold, named in one line (a wrong type would otherwise surface as a
    traceback, and a misspelt setting would be ignored and show up as every row rejected)."""
    where = f"mapping {Path(path).name}"
    for k, v in raw.items():
        if k in TABLES:
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {k} must be a table ([{k}] followed by key = value lines)")
        elif k in SETTINGS:
            if not isinstance(v, str):
                raise ConfigError(f"{where}: {k} must be a string, e.g. {k} = \"...\"; got {v!r}")
        else:
            raise ConfigError(f"{where}: unknown setting {k!r} (known: {', '.join(SETTINGS + TABLES)})")
    cols, items, defaults = raw.get("columns", {}), raw.get("items", {}), raw.get("defaults", {})
    for k in cols:
        if k not in ORDER_FIELDS and not k.startswith("additionalInfo."):
            raise ConfigError(f"{where}: [columns] {k} is not an add-orders field ({', '.join(ORDER_FIELDS)}, "
                              "additionalInfo.<name>)")
    for k in items:
        if k not in ITEM_FIELDS:
            raise ConfigError(f"{where}: [items] {k} is not an item field ({', '.join(ITEM_FIELDS)})")
    for table, entries in (("columns", cols), ("items", items)):
        for k, v in entries.items():
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}: [{table}] {k} must be a column name (a non-empty string); got {v!r}")
    for k, v in defaults.items():
        if k not in ORDER_FIELDS and not k.startswith("additionalInfo."):
            raise ConfigError(f"{where}: [defaults] {k} is not an add-orders field ({', '.join(ORDER_FIELDS)}, "
                              "additionalInfo.<name>)")
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ConfigError(f"{where}: [defaults] {k} must be a string or a number; got {v!r}")
    for k in ("decimal_separator", "thousands_separator"):
        if len(raw.get(k, ".")) > 1 or (k == "decimal_separator" and raw.get(k) == ""):
            raise ConfigError(f"{where}: {k} must be one character; got {raw[k]!r}")
    if raw.get("decimal_separator", ".") == raw.get("thousands_separator"):
        raise ConfigError(f"{where}: decimal_separator and thousands_separator are both {raw['thousands_separator']!r}")
    if "externalOrderId" not in cols:
        # the order id column tells the orders apart (rows are grouped by it): a constant cannot stand in
        raise ConfigError(f"{where}: [columns] lacks externalOrderId (the column of the order id; it cannot be "
                          "a [defaults] constant)")
    missing = [f for f in REQUIRED if f not in cols and f not in defaults]
    if missing:
        raise ConfigError(f"{where}: [columns] (or [defaults]) lacks {', '.join(missing)}")
    if items and ("externalItemId" not in items or "quantity" not in items):
        raise ConfigError(f"{where}: [items] needs externalItemId and quantity")
    if raw.get("layout", "order") not in ("order", "item"):
        raise ConfigError(f"{where}: layout must be \"order\" or \"item\"")
    if raw.get("layout") == "item" and not items:
        raise ConfigError(f"{where}: layout \"item\" needs an [items] table")
    for v, s in raw.get("status", {}).items():
        if not isinstance(s, str) or s.upper() not in STATUSES:
            raise ConfigError(f"{where}: [status] {v!r} = {s!r} is not one of {', '.join(STATUSES)}")


class GenericMapping:
    """A CSV laid out as the mapping file says."""

    label = "CSV with a generic mapping"

    def __init__(self, header: Header, mapping: dict, ctx: Context):
        self.cols: dict[str, str] = dict(mapping.get("columns", {}))
        self.item_cols: dict[str, str] = dict(mapping.get("items", {}))
        header.require(sorted(set(self.cols.values()) | set(self.item_cols.values())), "file this mapping describes")
        self.per_item = mapping.get("layout", "order") == "item"
        self.defaults = dict(mapping.get("defaults", {}))
        # additionalInfo.<name> from a column, a [defaults] constant, or both (the column's value first)
        self.info = list(dict.fromkeys(k for k in (*self.cols, *self.defaults) if k.startswith("additionalInfo.")))
        self.status_map = {str(k).strip().lower(): str(v).upper() for k, v in mapping.get("status", {}).items()}
        self.seps = {"decimal_sep": mapping.get("decimal_separator", "."),
                     "thousands_sep": mapping.get("thousands_separator", "")}
        tz = ctx.tz or zone(mapping.get("timezone"), "mapping timezone")
        self.dates = DateReader(mapping.get("date_format"), tz)
        self.prefix = ctx.order_id_prefix
        self.g = {c: header.getter(c) for c in set(self.cols.values()) | set(self.item_cols.values())}
        self.key_column = self.cols.get("externalOrderId", "externalOrderId")
        self._key = header.getter(self.key_column)

    def key(self, cells: list[str]) -> str:
        return self._key(cells).strip()

    def value(self, cells: list[str], fld: str) -> str:
        col = self.cols.get(fld)
        v = self.g[col](cells).strip() if col else ""
        return v or str(self.defaults.get(fld, ""))

    def build(self, rows: list[Row]) -> Built:
        c, first = Collector(), rows[0]
        cells, line = first.cells, first.line
        if self.per_item:
            self._check_consistent(c, rows)
        else:
            one_row_only(c, rows, self.key_column, self.key(cells), 'layout = "order" reads one row per order '
                         '(for one row per line item, set layout = "item" in the mapping)')
        data: dict = {}
        for f in ORDER_FIELDS:
            raw = self.value(cells, f)
            data[f] = self._field(c, line, f, raw) if raw else None
        data["externalOrderId"] = f"{self.prefix}{self.key(cells)}"
        data["additionalInfo"] = {k.split(".", 1)[1]: v for k in self.info if (v := self.value(cells, k))}
        notes = [UNTIMED] if self.dates.guessed else []
        if self.item_cols:
            data["items"] = [it for row in (rows if self.per_item else rows[:1]) if (it := self._item(c, row)) is not None]
        for f in ("totalCost", "date", "currency", "status"):
            if data.get(f) is None and not any(e.line == line and e.column == self.cols.get(f) for e in c.errors):
                c.add(line, self.cols.get(f, f), f"is empty; the order needs {f}")
        c.raise_if_any()
        return Built(data, {**self.cols, **{f"items.{k}": v for k, v in self.item_cols.items()},
                            "items": self.item_cols.get("externalItemId", "items"),
                            "externalCustomerId/email/phone": "/".join(self.cols.get(f, f) for f in
                                                                       ("externalCustomerId", "email", "phone") if f in self.cols)},
                     None, notes)

    def _field(self, c: Collector, line: int, f: str, raw: str):
        col = self.cols.get(f, f"[defaults] {f}")
        if f in MONEY_FIELDS:
            return c.run(line, money, raw, col, **self.seps)
        if f == "date":
            return c.run(line, self.dates, raw, col)
        if f == "status":
            return self._status(c, line, col, raw)
        if f in ROUNDED:
            c.run(line, not_rounded, raw, col, ROUNDED[f])
        return raw

    def _status(self, c: Collector, line: int, col: str, raw: str) -> str | None:
        if self.status_map:
            mapped = self.status_map.get(raw.lower())
            if mapped is None:
                c.add(line, col, f"unknown status {show(raw)} (the mapping's [status] knows: "
                      f"{', '.join(sorted(self.status_map))})")
            return mapped
        if raw.upper() not in STATUSES:
            c.add(line, col, f"unknown status {show(raw)}: expected one of {', '.join(STATUSES)}, or add a [status] "
                  "table to the mapping")
            return None
        return raw.upper()

    def _item(self, c: Collector, row: Row) -> dict | None:
        get = lambda k: self.g[self.item_cols[k]](row.cells).strip() if k in self.item_cols else ""   # noqa: E731
        col = self.item_cols
        qty = c.run(row.line, quantity, get("quantity"), col["quantity"], **self.seps)
        ident = get("externalItemId")
        if not ident:
            c.add(row.line, col["externalItemId"], "is empty; every line item needs an id")
        c.run(row.line, not_rounded, ident, col["externalItemId"], "item id")
        item = {k: get(k) or None for k in ("name", "category", "url", "imageUrl", "description") if k in col}
        cost = c.run(row.line, optional_money, get("cost"), col.get("cost", "cost"), **self.seps)
        line_total = c.run(row.line, optional_money, get("line_total"), col.get("line_total", "line_total"), **self.seps)
        if qty is None or not ident:
            return None
        if cost is None and line_total is not None:
            cost = line_total / qty
        item.update({"externalItemId": ident, "quantity": qty})
        if cost is not None:
            item["cost"] = cost
        return item

    def _check_consistent(self, c: Collector, rows: list[Row]) -> None:
        check_consistent(c, rows, ((col, self.g[col]) for col in self.cols.values()))
