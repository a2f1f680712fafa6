"""WooCommerce CSV exports, recognised from the header (reference/woocommerce.md section 5).

- WebToffee "Order Export & Order Import": one row per order, items in `line_item_N` cells
  (`name:…|product_id:…|sku:…|quantity:…|total:…`) or the expanded "Product Item N …" columns.
- SkyVerge "Customer / Order / Coupon Export", default format: one row per order with items in
  `line_items` (items joined by `;`), or "one row per item" with `item_*` columns.
- WooCommerce Analytics → Orders → Download: recognised and refused, since it has no email, phone,
  customer id or currency, so none of its orders could be matched to a contact.

Dates are site time without an offset: they take the shop's `timezone` (or --timezone), else UTC
with a warning. Line totals are after coupons and without tax, so cost = total / quantity.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from connector.errors import ConfigError
from connector.format import STATUSES
from connector.money import minor_unit

from adapters.csv.presets import Context
from adapters.csv.presets.base import Built, Collector, Header, check_consistent, one_row_only, reconciles
from adapters.csv.reader import CsvUnreadable, Row
from adapters.csv.values import DateReader, join_address, money, not_rounded, optional_money, quantity, show

# DESIGN.md section 3 (WooCommerce column); drafts are not orders (no default entry: rejected, named).
DEFAULT_STATUS_MAP = {
    "cancelled": "CANCELLED", "refunded": "CANCELLED", "failed": "CANCELLED", "trash": "CANCELLED",
    "completed": "DELIVERED", "processing": "IN_PROGRESS", "on-hold": "IN_PROGRESS", "pending": "INITIALIZED",
}
NOT_ORDERS = ("checkout-draft", "draft", "auto-draft")
UNTIMED = "dates have no UTC offset and no time zone is set: read as UTC (set the shop's timezone or --timezone)"


@dataclass(frozen=True)
class Layout:
    """Where one export format keeps each order field (first non-empty column wins)."""

    label: str
    id: str
    number: str
    date: str
    status: str
    total: str
    currency: tuple[str, ...]
    shipping: str
    discount: str
    taxes: str
    customer: tuple[str, ...]
    email: tuple[str, ...]
    phone: tuple[str, ...]
    payment: tuple[str, ...]
    paid: str


WEBTOFFEE = Layout("WooCommerce export (WebToffee)", "order_id", "order_number", "order_date", "status",
                   "order_total", ("order_currency",), "shipping_total", "discount_total", "tax_total",
                   ("customer_id", "customer_user"), ("billing_email", "customer_email"),
                   ("billing_phone", "shipping_phone"), ("payment_method_title", "payment_method"), "paid_date")
SKYVERGE = Layout("WooCommerce export (SkyVerge Customer/Order/Coupon Export)", "order_id", "order_number", "date",
                  "status", "order_total", ("order_currency", "currency"), "shipping_total", "discount_total",
                  "tax_total", ("customer_id",), ("billing_email",), ("billing_phone", "shipping_phone"),
                  ("payment_method_title", "payment_method"), "paid_date")
_LINE_ITEM_N = re.compile(r"^line_item_(\d+)$")
_PRODUCT_ITEM = re.compile(r"^Product Item (\d+) (Name|id|SKU|Quantity|Total|Subtotal)$")


def detect(header: Header, ctx: Context):
    """The WooCommerce export format of this header, bound; CsvUnreadable when none fits."""
    if "Order #" in header and ("Customer type" in header or "N. Revenue" in header or "Net Sales" in header):
        raise CsvUnreadable("this is a WooCommerce Analytics export (Date, Order #, Status, Customer, ...): it has "
                            "no email, phone, customer id or currency, so its orders cannot reach a contact; export "
                            "with WebToffee Order Export or SkyVerge Customer/Order/Coupon Export instead")
    if "order_id" in header and ("order_date" in header or "wt_import_key" in header or "line_item_1" in header):
        return WooExport(header, WEBTOFFEE, ctx, items="webtoffee")
    if "order_id" in header and "date" in header:
        if "item_name" in header or "item_quantity" in header:
            return WooExport(header, SKYVERGE, ctx, items="per_row")
        return WooExport(header, SKYVERGE, ctx, items="line_items")
    raise CsvUnreadable("not a WooCommerce export this preset knows (WebToffee Order Export: order_id, order_date, "
                        "line_item_N; SkyVerge Customer/Order/Coupon Export: order_id, date, status, order_total, "
                        "line_items or item_*): use --preset generic with a mapping file")


def status_table(ctx: Context) -> dict[str, str]:
    table = dict(DEFAULT_STATUS_MAP)
    for woo, ours in ctx.status_map.items():
        value = str(ours).strip().upper()
        if value not in STATUSES:
            raise ConfigError(f"status_map.{woo} must be one of {', '.join(STATUSES)}; got {ours!r}")
        table[str(woo).strip().lower().removeprefix("wc-")] = value
    return table


def parse_item_cell(text: str) -> dict[str, str]:
    """`name:Hoodie|product_id:12|quantity:2|total:40.00` → a dict (the first ':' splits key from value)."""
    out = {}
    for part in text.split("|"):
        k, sep, v = part.partition(":")
        if sep:
            out.setdefault(k.strip(), v.strip())
    return out


class WooExport:
    """A WooCommerce export bound to its header."""

    key_column = "order_id"

    def __init__(self, header: Header, layout: Layout, ctx: Context, items: str):
        header.require((layout.id, layout.date, layout.status, layout.total), layout.label)
        self.header, self.layout, self.items_kind = header, layout, items
        self.label = layout.label + (" (one row per item)" if items == "per_row" else "")
        self.prefix = ctx.order_id_prefix
        self.statuses = status_table(ctx)
        self.dates = DateReader(None, ctx.tz)
        self.g = {n: header.getter(n) for n in header.names}
        self._id = header.getter(layout.id)
        self.line_item_cols = sorted((int(m.group(1)), n) for n in header.names if (m := _LINE_ITEM_N.match(n)))
        self.product_cols = sorted({int(m.group(1)) for n in header.names if (m := _PRODUCT_ITEM.match(n))})

    def key(self, cells: list[str]) -> str:
        return self._id(cells).strip()

    def cell(self, cells: list[str], *names: str) -> str:
        for n in names:
            get = self.g.get(n)
            v = get(cells).strip() if get else ""
            if v:
                return v
        return ""

    # ---- building -----------------------------------------------------------------------

    def build(self, rows: list[Row]) -> Built:
        c, L, first = Collector(), self.layout, rows[0]
        cells, line = first.cells, first.line
        if self.items_kind == "per_row":
            self._check_consistent(c, rows)
        else:
            one_row_only(c, rows, L.id, self.key(cells), "this export has one row per order, its items in "
                         f"{'line_items' if self.items_kind == 'line_items' else 'line_item_N'} cells "
                         "(remove the repeated row, or export the order again)")
        status = self._status(c, line, self.cell(cells, L.status))
        currency = self.cell(cells, *L.currency).upper()
        if not currency:
            c.add(line, L.currency[0], "is empty (or the column is missing); the order needs a currency")
        date = c.run(line, self.dates, self.cell(cells, L.date), L.date)
        notes = [UNTIMED] if self.dates.guessed else []
        items = self._items(c, rows)
        data = {
            "externalOrderId": f"{self.prefix}{self.key(cells)}",
            "totalCost": c.run(line, money, self.cell(cells, L.total), L.total),
            "status": status, "date": date, "currency": currency,
            "externalCustomerId": self._customer(cells),
            "email": self.cell(cells, *L.email) or None,
            "phone": self.cell(cells, *L.phone) or None,
            "firstName": self.cell(cells, "billing_first_name", "shipping_first_name") or None,
            "lastName": self.cell(cells, "billing_last_name", "shipping_last_name") or None,
            "shipping": c.run(line, optional_money, self.cell(cells, L.shipping), L.shipping),
            "discount": c.run(line, optional_money, self.cell(cells, L.discount), L.discount),
            "taxes": c.run(line, optional_money, self.cell(cells, L.taxes), L.taxes),
            "deliveryMethod": self.cell(cells, "shipping_method") or None,
            "paymentMethod": self.cell(cells, *L.payment) or None,
            "deliveryAddress": self._address(cells),
            "additionalInfo": {"orderNumber": self.cell(cells, L.number)} if self.cell(cells, L.number) else {},
            "items": items,
        }
        for col in L.phone:
            c.run(line, not_rounded, self.cell(cells, col), col, "phone")
        if not (data["externalCustomerId"] or data["email"] or sum(ch.isdigit() for ch in data["phone"] or "") >= 5):
            c.add(line, "/".join(L.email[:1] + L.phone[:1]), "no contact id: no customer id, email or phone "
                  "(5 digits or more)")
        c.raise_if_any()
        notes += self._reconcile(data)
        return Built(data, self._columns(), None, notes)

    def _status(self, c: Collector, line: int, raw: str) -> str | None:
        key = raw.lower().removeprefix("wc-")
        if key in self.statuses:
            return self.statuses[key]
        if not key:
            c.add(line, self.layout.status, "is empty; expected a WooCommerce status such as processing")
        elif key in NOT_ORDERS:
            c.add(line, self.layout.status, f"{show(raw)} is a draft, not an order (map it in the shop's status_map "
                  "to import it)")
        else:
            return "INITIALIZED"     # custom statuses from plugins (DESIGN.md section 3)
        return None

    def _customer(self, cells: list[str]) -> str | None:
        # 0 = guest. With the shop's prefix, as the REST and webhook path writes it (WooCommerce customer ids
        # are small per-site numbers): a customer's imported history and live orders reach one contact.
        raw = self.cell(cells, *self.layout.customer)
        return f"{self.prefix}{raw}" if raw and raw != "0" else None

    def _address(self, cells: list[str]) -> str | None:
        for side in ("shipping", "billing"):
            text = join_address([self.cell(cells, f"{side}_{k}") for k in
                                 ("address_1", "address_2", "city", "state", "postcode", "country")])
            if text:
                return text
        return None

    def _check_consistent(self, c: Collector, rows: list[Row]) -> None:
        L = self.layout
        check_consistent(c, rows, ((col, get) for col in (L.date, L.status, L.total, *L.currency, *L.email)
                                   if (get := self.g.get(col)) is not None))

    def _columns(self) -> dict[str, str]:
        L = self.layout
        item_col = {"webtoffee": "line_item_1", "line_items": "line_items", "per_row": "item_name"}[self.items_kind]
        return {"externalOrderId": L.id, "totalCost": L.total, "status": L.status, "date": L.date,
                "currency": L.currency[0], "email": L.email[0], "phone": L.phone[0], "externalCustomerId": L.customer[0],
                "shipping": L.shipping, "discount": L.discount, "taxes": L.taxes, "items": item_col,
                "externalCustomerId/email/phone": f"{L.email[0]}/{L.phone[0]}"}

    # ---- items --------------------------------------------------------------------------

    def _items(self, c: Collector, rows: list[Row]) -> list[dict]:
        if self.items_kind == "per_row":
            return [it for row in rows if (it := self._item(c, row.line, "item_name", {
                "name": self.cell(row.cells, "item_name"), "product_id": self.cell(row.cells, "item_product_id"),
                "sku": self.cell(row.cells, "item_sku"), "quantity": self.cell(row.cells, "item_quantity"),
                "total": self.cell(row.cells, "item_total")})) is not None]
        cells, line = rows[0].cells, rows[0].line
        if self.items_kind == "line_items":
            raw = self.cell(cells, "line_items")
            parts = [p for p in raw.split(";") if p.strip()]
            return [it for p in parts if (it := self._item(c, line, "line_items", parse_item_cell(p))) is not None]
        out = []
        for _, col in self.line_item_cols:
            raw = self.cell(cells, col)
            if raw and (it := self._item(c, line, col, parse_item_cell(raw))) is not None:
                out.append(it)
        if not out:
            for n in self.product_cols:
                f = {k: self.cell(cells, f"Product Item {n} {k}") for k in ("Name", "id", "SKU", "Quantity", "Total")}
                if any(f.values()):
                    it = self._item(c, line, f"Product Item {n} Quantity", {
                        "name": f["Name"], "product_id": f["id"], "sku": f["SKU"], "quantity": f["Quantity"],
                        "total": f["Total"]})
                    if it is not None:
                        out.append(it)
        return out

    def _item(self, c: Collector, line: int, column: str, f: dict[str, str]) -> dict | None:
        qty = c.run(line, quantity, f.get("quantity", ""), f"{column} (quantity)")
        total = c.run(line, optional_money, f.get("total", ""), f"{column} (total)")
        ident = next((f.get(k) for k in ("_variation_id", "variation_id", "product_id", "sku")
                      if f.get(k) and f.get(k) != "0"), None) or f.get("name")
        if not ident:
            c.add(line, column, "the line item has no product id, SKU or name")
        if qty is None or not ident:
            return None
        item = {"externalItemId": ident, "name": f.get("name") or None, "quantity": qty}
        if total is not None:
            item["cost"] = total / qty
        return item

    @staticmethod
    def _reconcile(data: dict) -> list[str]:
        items = data["items"]
        if not items or any("cost" not in i for i in items):
            return []
        lines = sum((i["cost"] * i["quantity"] for i in items), Decimal(0))
        qty = int(sum(i["quantity"] for i in items))
        minor = Decimal(1).scaleb(-minor_unit(data["currency"]))
        if reconciles(data["totalCost"], lines, data.get("shipping"), data.get("taxes"), qty, minor):
            return []
        return ["does not reconcile: Σ item totals + shipping (+ taxes) ≠ order_total (fees or refunds?; sent anyway)"]
