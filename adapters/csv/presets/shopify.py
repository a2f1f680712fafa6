"""Shopify admin "Export orders" CSV: one row per line item, order fields on the first row only.

Facts used (reference/shopify.md section 5): 73 to 79+ columns that vary by export date (mapped by
name), rows of an order grouped together and keyed by `Name`, `Id` on the first row only, dates like
`2026-04-05 21:06:21 +0400`, `unfulfilled` for no fulfilment, no customer, product or line ids.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import compress
from operator import attrgetter
from typing import NamedTuple

from connector.errors import ConfigError
from marshmallow import ValidationError

from connector.format import (MAX_EMAIL_CHARS, MAX_KEY_CHARS, MAX_PHONE_DIGITS, STATUSES, amount_json, is_email,
                              json_string, normalise_phone, read_currency)
from connector.money import minor_unit, quantum

from adapters.csv.presets.base import Built, Collector, Header, OrderRejected, allocate_discount, reconciles
from adapters.csv.reader import Row
from adapters.csv.values import (CellError, DateReader, join_address, money, not_rounded, offset_date,
                                 offset_date_iso, optional_money, quantity, show, split_name, spreadsheet_mangled)

REQUIRED = ("Name", "Created at", "Currency", "Total", "Financial Status", "Lineitem quantity", "Lineitem name")

FINANCIAL = {"pending", "authorized", "partially_paid", "paid", "partially_refunded", "refunded", "voided", "expired"}
FULFILMENT = {"fulfilled", "unfulfilled", "partial", "restocked", ""}

# Order-level columns: read from the first row; a later row of the same order may leave them blank
# or repeat them, but must not contradict them.
ORDER_COLUMNS = (
    "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Currency", "Subtotal",
    "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method", "Created at",
    "Billing Name", "Billing Phone", "Shipping Name", "Shipping Address1", "Shipping Address2",
    "Shipping City", "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone",
    "Cancelled at", "Payment Method", "Id", "Phone",
)
ITEM_COLUMNS = ("Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku", "Lineitem discount")

COLUMNS = {
    "externalOrderId": "Id", "totalCost": "Total", "status": "Financial Status", "date": "Created at",
    "currency": "Currency", "email": "Email", "phone": "Phone", "firstName": "Billing Name",
    "lastName": "Billing Name", "shipping": "Shipping", "discount": "Discount Amount", "taxes": "Taxes",
    "deliveryMethod": "Shipping Method", "paymentMethod": "Payment Method", "deliveryAddress": "Shipping Address1",
    "items": "Lineitem name", "items.quantity": "Lineitem quantity", "items.cost": "Lineitem price",
    "items.externalItemId": "Lineitem sku", "externalCustomerId/email/phone": "Email/Phone",
}
SHOPIFY_DATE = "%Y-%m-%d %H:%M:%S %z"
_NO_AMOUNT = (None, None)          # an optional amount left blank: no value, nothing in the text
_DISCOUNT, _COST_QTY = attrgetter("discount"), attrgetter("cost_qty")
# One fixed text, so the summary counts these instead of listing every order.
_NOT_RECONCILED = "does not reconcile: Σ item cost × quantity + Shipping (+ Taxes) ≠ Total (sent anyway)"


class _Item(NamedTuple):
    """A line item as the fused path reads it from its cells."""

    qty: Decimal
    discount: Decimal           # the line's own discount
    net: Decimal | None         # price × quantity − discount (None without a price column)
    cost_qty: Decimal | None    # cost × quantity with cost = net / quantity, for the reconciliation
    text: str                   # its canonical JSON when no order-level discount is spread over the lines
    head: str                   # the text's parts after "cost" ...
    tail: str                   # ... so that another cost can be put in front


# DESIGN.md section 3, top-down, first match wins. Tokens and `status_map` semantics are those of
# adapters/shopify/translate.py (`cancelled` = Cancelled at set; `default` = everything else), so a
# shop's status_map means the same for its CSV history and its API/webhook orders.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("cancelled", "CANCELLED"), ("voided", "CANCELLED"), ("refunded", "CANCELLED"),
    ("fulfilled", "DELIVERED"),
    ("paid", "IN_PROGRESS"), ("authorized", "IN_PROGRESS"), ("partially_paid", "IN_PROGRESS"),
    ("partially_refunded", "IN_PROGRESS"), ("partial", "IN_PROGRESS"),
)
FALLBACK_KEY = "default"
_FULFILMENT_LIKE = ("fulfilled", "partial", "restocked", "unfulfilled")


def status_rules(status_map: dict[str, str]) -> tuple[list[tuple[str, str]], str]:
    """The ordered rules and the fallback for a shop's status_map (overrides in place, additions after)."""
    overrides = {str(k).strip().lower(): str(v).strip().upper() for k, v in (status_map or {}).items()}
    for k, v in overrides.items():
        if v not in STATUSES:
            raise ConfigError(f"status_map {k!r} = {v!r}; expected one of {', '.join(STATUSES)}")
    rules = [(tok, overrides.get(tok, st)) for tok, st in DEFAULT_RULES]
    listed = {tok for tok, _ in DEFAULT_RULES} | {FALLBACK_KEY}
    extra = sorted((k for k in overrides if k not in listed), key=lambda k: 0 if k in _FULFILMENT_LIKE else 1)
    return rules + [(k, overrides[k]) for k in extra], overrides.get(FALLBACK_KEY, "INITIALIZED")


def shopify_status(financial: str, fulfilment: str, cancelled: bool,
                   rules: list[tuple[str, str]] | None = None, fallback: str = "INITIALIZED") -> str:
    tokens = {financial, fulfilment or "unfulfilled"} | ({"cancelled"} if cancelled else set())
    return next((st for tok, st in (rules or DEFAULT_RULES) if tok in tokens), fallback)


AMOUNTS_CACHED = 50_000     # amount cells kept parsed (~400 bytes each), over all currencies
ITEMS_CACHED = 20_000       # line items kept built, over all currencies


class ShopifyExport:
    """The shopify preset bound to one file's header."""

    label = "Shopify orders export"
    key_column = "Name"

    def __init__(self, header: Header, prefix: str = "", status_map: dict[str, str] | None = None):
        header.require(REQUIRED, "Shopify orders export")
        self.header = header
        self.prefix = prefix
        self.rules, self.fallback = status_rules(status_map or {})
        self.known = FINANCIAL | {k.strip().lower() for k in (status_map or {})}
        self.has_id = "Id" in header
        self.has_price = "Lineitem price" in header
        self.pick_order = header.picker(ORDER_COLUMNS)
        self.pick_item = header.picker(ITEM_COLUMNS)
        self._name = header.position("Name")
        self._slow_dates = DateReader(SHOPIFY_DATE)
        self._statuses: dict[tuple[str, str, bool], str] = {}
        self._quanta: dict[str, Decimal] = {}
        self._item_cache: dict[str, dict[tuple[str, ...], _Item]] = {}                # by currency
        self._amount_cache: dict[str, dict[str, tuple[Decimal | None, str | None]]] = {}   # by currency
        # room left in those caches, over all currencies: memory stays flat whatever the file (a cache per
        # currency with a bound of its own grew with the number of currencies)
        self._room = {"amounts": AMOUNTS_CACHED, "items": ITEMS_CACHED}
        self._addresses: dict[tuple[str, ...], str] = {}

    def key(self, cells: list[str]) -> str:
        return cells[self._name].strip()

    def date(self, text: str, column: str) -> datetime:
        return offset_date(text, column, self._slow_dates)

    def build(self, rows: list[Row]) -> Built:
        """Every check, every error collected with its line and column (the reference for fast_canonical)."""
        c = Collector()
        first = rows[0]
        values = [x.strip() for x in self.pick_order(first.cells)]
        v = dict(zip(ORDER_COLUMNS, values))
        self._check_first_row(c, first, v)
        if len(rows) > 1:
            self._check_consistent(c, rows, values)
        items, line_discounts, qty_total = self._items(c, rows)
        currency = v["Currency"].upper()
        data, notes = self._order(c, first.line, v, currency, self.key(first.cells))
        c.raise_if_any()
        self._set_item_costs(items, (data.get("discount") or Decimal(0)) - line_discounts)
        data["items"] = items
        notes += self._reconcile(data, items, qty_total, currency)
        return Built(data, COLUMNS, self._updated_at(data["date"], v), notes)

    # ---- the fused path: cells → canonical JSON, None at the first doubt ------------------
    # A file of 1M rows spends most of its time here. It writes what build() + validate_to_canonical give
    # (tests hold the two equal), with the format's own pieces; errors always come from build(), which
    # runs whenever this path steps aside.

    @staticmethod
    def _money(text: str) -> Decimal | None:
        """money(), None where it would name an error (the callers' results are cached, by cell text)."""
        try:
            return money(text, "")
        except CellError:
            return None

    def _amount(self, text: str, cache: dict, q: Decimal) -> tuple[Decimal | None, str | None]:
        """An order amount's value and canonical JSON, (None, None) where the fused path cannot take it."""
        d = self._money(text)
        got = (d, amount_json(d, q)) if d is not None else (None, None)
        if got[1] is None:
            got = (None, None)
        if self._room["amounts"] > 0:
            self._room["amounts"] -= 1
            cache[text] = got
        return got

    def _item(self, cells: tuple[str, ...], q: Decimal) -> _Item | None:
        """One line item's values and texts from its cells (cached by the cells: a catalogue repeats)."""
        raw_qty, name, raw_price, sku, raw_discount = cells
        name, sku = name.strip(), sku.strip()
        qty = self._money(raw_qty) if raw_qty.strip() else None
        if not qty or not (sku or name) or "\x00" in sku or "\x00" in name:
            return None
        if "E+" in sku.upper():
            try:
                not_rounded(sku, "", "")      # a SKU a spreadsheet rounded: build() names it
            except CellError:
                return None
        discount = Decimal(0)
        if raw_discount.strip() and (discount := self._money(raw_discount)) is None:
            return None
        qty_json = amount_json(qty, None)
        if qty_json is None:
            return None
        head = f'"externalItemId":{json_string(sku or name)}' + (f',"name":{json_string(name)}' if name else "")
        tail = f',"quantity":{qty_json}}}'
        if not self.has_price:
            return _Item(qty, discount, None, None, "{" + head + tail, head, tail)
        price = self._money(raw_price)
        if price is None:
            return None
        net = max(price * qty - discount, Decimal(0))
        cost = net / qty
        cost_json = amount_json(cost, q)
        if cost_json is None:
            return None
        return _Item(qty, discount, net, cost * qty, f'{{"cost":{cost_json},{head}{tail}', head, tail)

    def fast_canonical(self, rows: list[Row], nul_free: bool = False) -> tuple[str, str, datetime, list[str]] | None:
        """(order id, canonical JSON, updated at, notes) of a valid, usual order, written straight from its
        cells: what validate_to_canonical(build(rows).data) gives, at a fraction of the cost. None at the
        first doubt (the caller then builds and validates). `nul_free`: the caller knows no cell holds NUL."""
        first = rows[0]
        pick_order = self.pick_order
        raw = pick_order(first.cells)
        if len(rows) > 1:
            checked = None
            for row in rows[1:]:
                # a later row's filled order cells must be the first row's in the same columns; any other
                # (even one differing only by spaces) sends the order to the careful check. Found in C with
                # no call per cell: the filled cells against the first row's where they are filled. Later
                # rows usually repeat one another (Email and nothing else): those are checked once.
                later = pick_order(row.cells)
                if later != checked and list(filter(None, later)) != list(compress(raw, later)):
                    return None
                checked = later
        (email, financial, paid_at, fulfilment, fulfilled_at, currency, _subtotal, shipping, taxes, total, code,
         discount, method, created, billing_name, billing_phone, shipping_name, addr1, addr2, city, zip_, province,
         country, shipping_phone, cancelled_at, payment, oid, phone) = map(str.strip, raw)
        q = self._quanta.get(currency)
        if q is None:
            try:
                q = self._quanta[currency] = quantum(read_currency(currency.upper()))
            except ValidationError:
                return None
            self._amount_cache[currency], self._item_cache[currency] = {}, {}
        # items: cached per distinct cells, with their text when no order-level discount changes the cost
        items, cache, pick_item = [], self._item_cache[currency], self.pick_item
        for row in rows:
            cells = pick_item(row.cells)
            item = cache.get(cells)
            if item is None:
                item = self._item(cells, q)
                if item is None:
                    return None
                if self._room["items"] > 0:
                    self._room["items"] -= 1
                    cache[cells] = item
            items.append(item)
        financial_l, fulfilment_l = financial.lower(), fulfilment.lower()
        if not financial_l or financial_l not in self.known or (fulfilment_l not in FULFILMENT
                                                                and fulfilment_l not in self.known):
            return None
        if oid and not oid.isdigit() or not total:
            return None
        # a phone a spreadsheet turned into 1.67188E+13 (checked only when an E is there at all)
        if "E" in f"{phone}{billing_phone}{shipping_phone}".upper() and any(
                spreadsheet_mangled(x) for x in (phone, billing_phone, shipping_phone)):
            return None
        name = first.cells[self._name].strip()
        notes: list[str] = []
        if not oid:
            oid = name.lstrip("#")
            notes.append("no Id column: Name used as the order id" if not self.has_id else "Id empty: Name used as the order id")
        oid = f"{self.prefix}{oid}".strip()
        # amounts: (Decimal, canonical JSON) by cell text, per currency
        cache, amount = self._amount_cache[currency], self._amount
        total_cost, wire_total = cache.get(total) or amount(total, cache, q)
        shipping_d, wire_shipping = (cache.get(shipping) or amount(shipping, cache, q)) if shipping else _NO_AMOUNT
        discount_d, wire_discount = (cache.get(discount) or amount(discount, cache, q)) if discount else _NO_AMOUNT
        taxes_d, wire_taxes = (cache.get(taxes) or amount(taxes, cache, q)) if taxes else _NO_AMOUNT
        if total_cost is None or (shipping and shipping_d is None) or (discount and discount_d is None) \
                or (taxes and taxes_d is None):
            return None
        contact = phone or billing_phone or shipping_phone or None
        wire_phone = normalise_phone(contact)
        # read_email's checks, inline: a call chain per order costs more than the checks themselves
        if email and ("\x00" in email or len(email) > MAX_EMAIL_CHARS or not is_email(email)):
            return None
        try:
            if (parsed := offset_date_iso(created)) is not None:
                date, iso = parsed
            else:
                date = self.date(created, "Created at")
                iso = date.isoformat()
            cancelled = bool(cancelled_at) and self.date(cancelled_at, "Cancelled at") is not None
        except CellError:
            return None
        if not oid or not (email or wire_phone) or not 1 < date.year < 9999 or len(oid) > MAX_KEY_CHARS \
                or len(wire_phone or "") > MAX_PHONE_DIGITS:
            return None
        status_key = (financial_l, fulfilment_l, cancelled)
        status = self._statuses.get(status_key)
        if status is None:
            status = self._statuses[status_key] = shopify_status(financial_l, fulfilment_l, cancelled, self.rules,
                                                                 self.fallback)
        first_name, last_name = split_name(billing_name or shipping_name)
        parts = (addr1, addr2, city, zip_, province, country)
        address = self._addresses.get(parts)
        if address is None:
            address = (join_address(parts) or "").strip()
            if len(self._addresses) < 20_000:      # customers order again: cached, bounded
                self._addresses[parts] = address
        if not nul_free and "\x00" in "".join((oid, contact or "", billing_name, shipping_name, method, payment,
                                                 address, name, code)):
            return None
        # the item costs: the cached texts, unless an order-level discount is spread over the lines
        # (sums in C, after the loop; the line discounts only where an order-level discount needs them)
        if not (self.has_price and discount_d
                and discount_d > (line_discounts := sum(filter(None, map(_DISCOUNT, items))))):
            texts = [i.text for i in items]
            lines = sum(map(_COST_QTY, items)) if self.has_price else None
        else:
            texts, lines = [], Decimal(0)
            for i, net in zip(items, allocate_discount([i.net for i in items], discount_d - line_discounts)):
                cost = net / i.qty
                if (cost_json := amount_json(cost, q)) is None:
                    return None
                texts.append(f'{{"cost":{cost_json},{i.head}{i.tail}')
                lines += cost * i.qty
        if self.has_price and lines + (shipping_d or 0) != total_cost \
                and not reconciles(total_cost, lines, shipping_d, taxes_d, int(sum(i.qty for i in items)), q):
            notes.append(_NOT_RECONCILED)
        latest = date
        for text in (paid_at, fulfilled_at, cancelled_at):
            if text:
                try:
                    latest = max(latest, self.date(text, ""))
                except CellError:
                    pass
        text = "".join((
            '{"additionalInfo":{', f'"discountCode":{json_string(code)},' if code else "",
            f'"orderNumber":{json_string(name)}}},"currency":"{currency.upper()}","date":"{iso}"',
            f',"deliveryAddress":{json_string(address)}' if address else "",
            f',"deliveryMethod":{json_string(method)}' if method else "",
            f',"discount":{wire_discount}' if wire_discount is not None else "",
            f',"email":{json_string(email)}' if email else "",
            f',"externalOrderId":{json_string(oid)}',
            f',"firstName":{json_string(first_name)}' if first_name else "",
            f',"items":[{",".join(texts)}]',
            f',"lastName":{json_string(last_name)}' if last_name else "",
            f',"paymentMethod":{json_string(payment)}' if payment else "",
            f',"phone":"{wire_phone}"' if wire_phone else "",
            f',"shipping":{wire_shipping}' if wire_shipping is not None else "",
            f',"status":"{status}"',
            f',"taxes":{wire_taxes}' if wire_taxes is not None else "",
            f',"totalCost":{wire_total}}}'))
        return oid, text, latest, notes

    # ---- order level -------------------------------------------------------------------

    def _check_first_row(self, c: Collector, first: Row, v: dict) -> None:
        if not v["Financial Status"] and not v["Total"] and not v["Currency"]:
            c.add(first.line, "Financial Status", f"the first row of order {self.key(first.cells)} lacks the "
                  "order-level fields (Financial Status, Currency, Total): rows of one order must be together, "
                  "with the order's first row first (a later part of an order is imported with its first row: "
                  "import the whole original file again)")
            raise OrderRejected(c.errors)

    def _check_consistent(self, c: Collector, rows: list[Row], values: list[str]) -> None:
        """A later row may leave order-level cells blank or repeat them, never contradict them."""
        for row in rows[1:]:
            later = self.pick_order(row.cells)
            for i in [i for i, x in enumerate(later) if x and x != values[i] and x.strip() != values[i]]:
                c.add(row.line, ORDER_COLUMNS[i], f"inconsistent with line {rows[0].line} of the same order: "
                      f"{show(later[i].strip())} here, {show(values[i])} there")

    def _status(self, c: Collector, line: int, v: dict) -> str:
        financial, fulfilment = v["Financial Status"].lower(), v["Fulfillment Status"].lower()
        if not financial:
            c.add(line, "Financial Status", "is empty on the order's first row")
        elif financial not in self.known:
            c.add(line, "Financial Status", f"unknown status {show(v['Financial Status'])} "
                  f"(expected one of {', '.join(sorted(FINANCIAL))}, or a status_map entry)")
        if fulfilment not in FULFILMENT and fulfilment not in self.known:
            c.add(line, "Fulfillment Status", f"unknown status {show(v['Fulfillment Status'])} "
                  "(expected fulfilled, unfulfilled, partial or restocked)")
        cancelled = bool(v["Cancelled at"]) and c.run(line, self.date, v["Cancelled at"], "Cancelled at") is not None
        return shopify_status(financial, fulfilment, cancelled, self.rules, self.fallback)

    def _order(self, c: Collector, line: int, v: dict, currency: str, name: str) -> tuple[dict, list[str]]:
        notes: list[str] = []
        oid = v["Id"]
        if oid and not oid.isdigit():
            c.add(line, "Id", f"{show(oid)} is not a Shopify order id (digits only)"
                  + (": a spreadsheet rounded it; export again and import without opening it in Excel,"
                     " or format the column as text" if spreadsheet_mangled(oid) else ""))
        if not oid:
            # Without Id the order cannot dedupe with API and webhook data (reference/shopify.md section 5).
            oid = name.lstrip("#")
            notes.append("no Id column: Name used as the order id" if not self.has_id else "Id empty: Name used as the order id")
        first, last = split_name(v["Billing Name"] or v["Shipping Name"])
        data = {
            "externalOrderId": f"{self.prefix}{oid}",
            "totalCost": c.run(line, money, v["Total"], "Total"),
            "status": self._status(c, line, v),
            "date": c.run(line, self.date, v["Created at"], "Created at"),
            "currency": currency,
            "email": v["Email"] or None,
            "phone": self._phone(c, line, v),
            "firstName": first, "lastName": last,
            "shipping": c.run(line, optional_money, v["Shipping"], "Shipping"),
            "discount": c.run(line, optional_money, v["Discount Amount"], "Discount Amount"),
            "taxes": c.run(line, optional_money, v["Taxes"], "Taxes"),
            "deliveryMethod": v["Shipping Method"] or None,
            "paymentMethod": v["Payment Method"] or None,
            "deliveryAddress": join_address([v[k] for k in ("Shipping Address1", "Shipping Address2", "Shipping City",
                                                            "Shipping Zip", "Shipping Province", "Shipping Country")]),
            "additionalInfo": self._info(v, name),
        }
        if not data["email"] and not self._digits(data["phone"]):
            c.add(line, "Email/Phone", "no contact id: Email is empty and no Phone, Billing Phone or Shipping Phone "
                  "has 5 digits or more")
        return data, notes

    @staticmethod
    def _phone(c: Collector, line: int, v: dict) -> str | None:
        for col in ("Phone", "Billing Phone", "Shipping Phone"):
            if spreadsheet_mangled(v[col]):
                c.add(line, col, f"{show(v[col])}: a spreadsheet turned the phone into a rounded number; "
                      "export again, or format the column as text")
        return v["Phone"] or v["Billing Phone"] or v["Shipping Phone"] or None

    @staticmethod
    def _digits(phone: str | None) -> int:
        return sum(ch.isdigit() for ch in phone or "") >= 5

    @staticmethod
    def _info(v: dict, name: str) -> dict:
        info = {"orderNumber": name}
        if v["Discount Code"]:
            info["discountCode"] = v["Discount Code"]
        return info

    def _updated_at(self, created: datetime, v: dict) -> datetime:
        """The latest event the export shows; an API version newer than it wins in the outbox."""
        latest = created
        for col in ("Paid at", "Fulfilled at", "Cancelled at"):
            if v[col]:
                try:
                    latest = max(latest, self.date(v[col], col))
                except CellError:
                    pass            # Paid at / Fulfilled at are informational; Cancelled at was checked
        return latest

    # ---- items -------------------------------------------------------------------------

    def _items(self, c: Collector, rows: list[Row]) -> tuple[list[dict], Decimal, Decimal]:
        """One item per row; also the sum of line discounts and of quantities."""
        items, discounts, qty_total = [], Decimal(0), Decimal(0)
        for row in rows:
            line = row.line
            raw_qty, name, raw_price, sku, raw_discount = self.pick_item(row.cells)
            name, sku = name.strip(), sku.strip()
            qty = c.run(line, quantity, raw_qty, "Lineitem quantity")
            price = c.run(line, money, raw_price, "Lineitem price") if self.has_price else None
            line_discount = c.run(line, optional_money, raw_discount, "Lineitem discount") or Decimal(0)
            if not (sku or name):
                c.add(line, "Lineitem name", "the line item has neither a name nor a SKU")
            c.run(line, not_rounded, sku, "Lineitem sku", "item id")
            if qty is None:
                continue
            net = max(price * qty - line_discount, Decimal(0)) if price is not None else None
            items.append({"externalItemId": sku or name, "name": name or None, "quantity": qty, "_net": net})
            discounts += line_discount
            qty_total += qty
        return items, discounts, qty_total

    @staticmethod
    def _set_item_costs(items: list[dict], order_discount: Decimal) -> None:
        """cost = unit price after discounts: the line's own discount, then the order-level rest pro rata.

        The export's `Discount Amount` is the order's total discount while `Lineitem discount` stays
        0.00 for an order-level code (fixture #71737: 600 + 1400 − 400 = Subtotal 1600), so the part
        not on the lines is spread over them; otherwise Σ cost × quantity would exceed the total.
        """
        nets = [i.pop("_net") for i in items]
        if any(n is None for n in nets):
            return                  # no Lineitem price column: cost is optional, leave it out
        for item, net in zip(items, allocate_discount(nets, order_discount)):
            item["cost"] = net / item["quantity"]

    def _reconcile(self, data: dict, items: list[dict], qty_total: Decimal, currency: str) -> list[str]:
        if not items or any("cost" not in i for i in items):
            return []
        lines = sum(i["cost"] * i["quantity"] for i in items)
        minor = Decimal(1).scaleb(-minor_unit(currency))
        if reconciles(data["totalCost"], lines, data.get("shipping"), data.get("taxes"), int(qty_total), minor):
            return []
        return [_NOT_RECONCILED]
