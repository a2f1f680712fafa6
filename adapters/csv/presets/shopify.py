"""Shopify admin "Export orders" CSV: one row per line item, order fields on the first row only.

Facts used (reference/shopify.md section 5): 73 to 79+ columns that vary by export date (mapped by
name), rows of an order grouped together and keyed by `Name`, `Id` on the first row only, dates like
`2026-04-05 21:06:21 +0400`, `unfulfilled` for no fulfilment, no customer, product or line ids.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import compress
from operator import ne
from typing import Callable, NamedTuple

from connector.errors import ConfigError
from marshmallow import ValidationError

from connector.format import STATUSES, amount_json, json_string, normalise_phone, read_currency, read_email
from connector.money import minor_unit, quantum

from adapters.csv.presets.base import Built, Collector, Header, OrderRejected, allocate_discount, reconciles
from adapters.csv.reader import Row
from adapters.csv.values import (CellError, DateReader, join_address, money, offset_date, optional_money, quantity, show,
                                 split_name, spreadsheet_mangled)

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
# One fixed text, so the summary counts these instead of listing every order.
_NOT_RECONCILED = "does not reconcile: Σ item cost × quantity + Shipping (+ Taxes) ≠ Total (sent anyway)"


class _Parts(NamedTuple):
    """A valid order's values as the fast path reads them, before either finisher writes them out."""

    oid: str
    total: Decimal
    status: str
    date: datetime
    currency: str
    email: str | None
    phone: str | None           # as written (the format keeps the digits)
    first_name: str | None
    last_name: str | None
    shipping: Decimal | None
    discount: Decimal | None
    taxes: Decimal | None
    method: str | None
    payment: str | None
    address: str | None
    number: str                 # the Name column, `#1001`
    code: str                   # the discount code, or ""
    items: list[dict]           # externalItemId, name, quantity and (with a price column) cost
    latest: datetime
    notes: list[str]


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


def _opt_text(key: str, value: str | None) -> str:
    """`,"key":"value"` for the canonical text, or nothing: the format trims text, and blank is absent."""
    return f',"{key}":{json_string(value)}' if value and (value := value.strip()) else ""


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
        self._amounts: dict[str, Decimal] = {}
        self._statuses: dict[tuple[str, str, bool], str] = {}

    def key(self, cells: list[str]) -> str:
        return cells[self._name].strip()

    def compact(self) -> tuple[Callable[[list[str]], tuple[str, ...]], "ShopifyExport"]:
        """The cells `build` reads, and this preset bound to just those columns: a worker process gets
        a third of each row (79+ columns, mostly blank, cost more to pickle than to build)."""
        used = [n for n in dict.fromkeys(("Name",) + ORDER_COLUMNS + ITEM_COLUMNS) if n in self.header]
        header = Header(used)
        bound = ShopifyExport.__new__(ShopifyExport)
        bound.__dict__.update(self.__dict__)
        bound.header, bound.pick_order, bound.pick_item = header, header.picker(ORDER_COLUMNS), header.picker(ITEM_COLUMNS)
        bound._name = header.position("Name")
        return self.header.picker(used), bound

    def date(self, text: str, column: str) -> datetime:
        return offset_date(text, column, self._slow_dates)

    def build(self, rows: list[Row]) -> Built:
        built = self._fast_build(rows)
        return built if built is not None else self._careful_build(rows)

    def _careful_build(self, rows: list[Row]) -> Built:
        """Every check, every error collected with its line and column (the reference for _fast_build)."""
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

    # ---- the fast path: a valid order built with few calls, None at the first doubt -------
    # A file of 1M rows spends most of its time here; errors always come from _careful_build,
    # which runs again whenever this path is unsure, so both give the same Built for valid rows.

    def _money(self, text: str) -> Decimal | None:
        """money() for the common case, cached: an export repeats a few hundred prices."""
        d = self._amounts.get(text)
        if d is None:
            try:
                d = money(text, "")
            except CellError:
                return None
            if len(self._amounts) < 100_000:   # bounded: memory stays flat whatever the file
                self._amounts[text] = d
        return d

    def _fast_parts(self, rows: list[Row]) -> _Parts | None:
        first = rows[0]
        values = [x.strip() for x in self.pick_order(first.cells)]
        (email, financial, paid_at, fulfilment, fulfilled_at, currency, _subtotal, shipping, taxes, total, code,
         discount, method, created, billing_name, billing_phone, shipping_name, addr1, addr2, city, zip_, province,
         country, shipping_phone, cancelled_at, payment, oid, phone) = values
        if len(rows) > 1:
            raw = self.pick_order(first.cells)
            for row in rows[1:]:
                # a later row's order cells that are neither blank nor as on the first row, found in C;
                # any (even one differing only by spaces) sends the order to the careful check
                later = self.pick_order(row.cells)
                if any(filter(None, compress(later, map(ne, later, raw)))):
                    return None
        items, nets, line_discounts, qty_total = [], [], Decimal(0), Decimal(0)
        money_of, pick_item, has_price = self._money, self.pick_item, self.has_price
        for row in rows:
            raw_qty, name, raw_price, sku, raw_discount = pick_item(row.cells)
            name, sku = name.strip(), sku.strip()
            qty = money_of(raw_qty) if raw_qty.strip() else None
            if not qty or not (sku or name):
                return None
            line_discount = Decimal(0)
            if raw_discount.strip():
                line_discount = money_of(raw_discount)
                if line_discount is None:
                    return None
            if has_price:
                price = money_of(raw_price)
                if price is None:
                    return None
                nets.append(max(price * qty - line_discount, Decimal(0)))
            items.append({"externalItemId": sku or name, "name": name or None, "quantity": qty})
            line_discounts += line_discount
            qty_total += qty
        financial_l, fulfilment_l = financial.lower(), fulfilment.lower()
        if not financial_l or financial_l not in self.known or (fulfilment_l not in FULFILMENT
                                                                and fulfilment_l not in self.known):
            return None
        if oid and not oid.isdigit():
            return None
        if (phone and spreadsheet_mangled(phone)) or (billing_phone and spreadsheet_mangled(billing_phone)) \
                or (shipping_phone and spreadsheet_mangled(shipping_phone)):
            return None
        name = self.key(first.cells)
        notes: list[str] = []
        if not oid:
            oid = name.lstrip("#")
            notes.append("no Id column: Name used as the order id" if not self.has_id else "Id empty: Name used as the order id")
        try:
            cancelled = bool(cancelled_at) and self.date(cancelled_at, "Cancelled at") is not None
            date = self.date(created, "Created at")
        except CellError:
            return None
        amounts = []
        for text in (shipping, discount, taxes):
            d = None
            if text and (d := money_of(text)) is None:
                return None
            amounts.append(d)
        total_cost = money_of(total) if total else None
        contact = phone or billing_phone or shipping_phone or None
        if total_cost is None or not (email or self._digits(contact)):
            return None
        first_name, last_name = split_name(billing_name or shipping_name)
        status_key = (financial_l, fulfilment_l, cancelled)
        status = self._statuses.get(status_key)
        if status is None:
            status = self._statuses[status_key] = shopify_status(financial_l, fulfilment_l, cancelled, self.rules,
                                                                 self.fallback)
        currency = currency.upper()
        if has_price:
            # cost = unit price after discounts (see _set_item_costs), set here once for both finishers
            for item, net in zip(items, allocate_discount(nets, (amounts[1] or Decimal(0)) - line_discounts)):
                item["cost"] = net / item["quantity"]
            if not reconciles(total_cost, sum(i["cost"] * i["quantity"] for i in items), amounts[0], amounts[2],
                              int(qty_total), Decimal(1).scaleb(-minor_unit(currency))):
                notes.append(_NOT_RECONCILED)
        latest = date
        for text in (paid_at, fulfilled_at, cancelled_at):
            if text:
                try:
                    latest = max(latest, self.date(text, ""))
                except CellError:
                    pass
        return _Parts(f"{self.prefix}{oid}", total_cost, status, date, currency, email or None, contact, first_name,
                      last_name, amounts[0], amounts[1], amounts[2], method or None, payment or None,
                      join_address([addr1, addr2, city, zip_, province, country]), name, code, items, latest, notes)

    def _fast_build(self, rows: list[Row]) -> Built | None:
        p = self._fast_parts(rows)
        if p is None:
            return None
        info = {"orderNumber": p.number}
        if p.code:
            info["discountCode"] = p.code
        data = {
            "externalOrderId": p.oid, "totalCost": p.total, "status": p.status, "date": p.date,
            "currency": p.currency, "email": p.email, "phone": p.phone, "firstName": p.first_name,
            "lastName": p.last_name, "shipping": p.shipping, "discount": p.discount, "taxes": p.taxes,
            "deliveryMethod": p.method, "paymentMethod": p.payment, "deliveryAddress": p.address,
            "additionalInfo": info, "items": p.items,
        }
        return Built(data, COLUMNS, p.latest, p.notes)

    def fast_canonical(self, rows: list[Row]) -> tuple[str, str, datetime, list[str]] | None:
        """(order id, canonical JSON, updated at, notes) of a valid, usual order, written from its parts:
        what validate_to_canonical(build(rows).data) gives, at a fraction of the cost. None at the first
        doubt (the caller then builds and validates); tests hold the two equal."""
        p = self._fast_parts(rows)
        if p is None:
            return None
        try:
            currency, email = read_currency(p.currency), read_email(p.email)
        except ValidationError:
            return None
        oid, q, phone = p.oid.strip(), quantum(currency), normalise_phone(p.phone)
        if not oid or not 1 < p.date.year < 9999 or (phone is None and email is None) \
                or "\x00" in "".join((oid, p.phone or "", p.first_name or "", p.last_name or "", p.method or "",
                                      p.payment or "", p.address or "", p.number, p.code)):
            return None
        money = []
        for amount in (p.discount, p.shipping, p.taxes, p.total):
            if amount is not None and (amount := amount_json(amount, q)) is None:
                return None
            money.append(amount)
        discount, shipping, taxes, total = money
        items = []
        for item in p.items:
            sku, name, cost = item["externalItemId"], item["name"], item.get("cost")
            qty = amount_json(item["quantity"], None)
            if qty is None or "\x00" in sku or (name and "\x00" in name):
                return None
            if cost is not None and (cost := amount_json(cost, q)) is None:
                return None
            # the canonical text, keys in canonical_json's order: cost, externalItemId, name, quantity
            items.append("".join(("{", f'"cost":{cost},' if cost is not None else "", '"externalItemId":',
                                  json_string(sku), f',"name":{json_string(name)}' if name else "",
                                  f',"quantity":{qty}}}')))
        text = "".join((
            '{"additionalInfo":{', f'"discountCode":{json_string(p.code)},' if p.code else "",
            f'"orderNumber":{json_string(p.number)}}},"currency":"{currency}","date":"{p.date.isoformat()}"',
            _opt_text("deliveryAddress", p.address), _opt_text("deliveryMethod", p.method),
            f',"discount":{discount}' if discount is not None else "", _opt_text("email", email),
            f',"externalOrderId":{json_string(oid)}', _opt_text("firstName", p.first_name),
            f',"items":[{",".join(items)}]' if items else "", _opt_text("lastName", p.last_name),
            _opt_text("paymentMethod", p.payment), f',"phone":"{phone}"' if phone else "",
            f',"shipping":{shipping}' if shipping is not None else "", f',"status":"{p.status}"',
            f',"taxes":{taxes}' if taxes is not None else "", f',"totalCost":{total}}}'))
        return oid, text, p.latest, p.notes

    # ---- order level -------------------------------------------------------------------

    def _check_first_row(self, c: Collector, first: Row, v: dict) -> None:
        if not v["Financial Status"] and not v["Total"] and not v["Currency"]:
            c.add(first.line, "Financial Status", f"the first row of order {self.key(first.cells)} lacks the "
                  "order-level fields (Financial Status, Currency, Total): rows of one order must be together, "
                  "with the order's first row first")
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
