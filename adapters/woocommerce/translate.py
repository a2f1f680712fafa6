"""WooCommerce REST v3 order JSON (= webhook body) → add-orders order: pure, no I/O, no clock.

Money rule (DESIGN.md section 3), as WooCommerce stores an order:
  line_items[].total / fee_lines[].total / shipping_total are always WITHOUT tax (even when the shop
  enters prices with tax, `prices_include_tax: true`); their taxes sit beside them (`total_tax`,
  `shipping_tax`), and `total` = Σ line totals + Σ fee totals + shipping_total + total_tax.
  * prices exclude tax: cost = line total / qty, shipping = shipping_total, taxes = total_tax, so
    Σ cost × qty + shipping + taxes = totalCost.
  * prices include tax: cost = (line total + line tax) / qty and shipping = shipping_total + shipping_tax
    (what the customer saw), so Σ cost × qty + shipping = totalCost; `taxes` = total_tax, for information.
  Line totals are after coupons, so `cost` is the unit price after discounts. Positive fees become items
  (`fee-<id>`, quantity 1); negative fees (discounts added as fees) are spread over the product lines
  pro rata and added to `discount`. Refunds do not lower totalCost (as the official Yespo plugin does; a
  fully refunded order is CANCELLED); the refunded amount goes to additionalInfo.refunded.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from connector.errors import ConfigError, InvalidInput
from connector.format import STATUSES, InvalidOrder, Order, normalise_phone, order_to_wire, parse_order
from connector.money import minor_unit, round_money, to_decimal

IGNORE = "IGNORE"

# DESIGN.md section 3; `checkout-draft` is switched on by the shop option abandoned_carts.
DEFAULT_STATUS_MAP = {
    "cancelled": "CANCELLED", "refunded": "CANCELLED", "failed": "CANCELLED", "trash": "CANCELLED",
    "completed": "DELIVERED",
    "processing": "IN_PROGRESS", "on-hold": "IN_PROGRESS",
    # Core since WooCommerce 11.3, local pickup only: paid and packed, waiting for the buyer (not "unpaid").
    "ready-for-pickup": "IN_PROGRESS",
    "pending": "INITIALIZED",
    # Not orders yet: WooCommerce never delivers draft/auto-draft (WH is_valid_resource) and sends
    # checkout-draft on every re-save of a block-checkout draft (woocommerce/woocommerce#66995).
    "checkout-draft": IGNORE, "draft": IGNORE, "auto-draft": IGNORE,
}
# The statuses whose payment_url (the order-pay page) takes a payment: WC_Order::needs_payment's default.
# For any other, a checkout-draft included, that page says the order "cannot be paid for".
PAYABLE = ("pending", "failed")
_ADDRESS_PARTS = ("address_1", "address_2", "city", "state", "postcode", "country")


@dataclass(frozen=True)
class Options:
    """What translation needs to know about the shop (built from its config by `options_of`)."""

    order_id_prefix: str = ""
    status_map: Mapping[str, str] = field(default_factory=dict)   # woo status → Yespo status or IGNORE


@dataclass(frozen=True)
class Product:
    """Details of a product that the order JSON lacks (from GET /products, optional)."""

    url: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Translation:
    """The outcome for one WooCommerce order: an order to send, a reason to skip it, or an error."""

    external_order_id: str
    order: Order | None = None
    wire: dict | None = None           # the add-orders object; also kept when it is not sendable
    ignored: str | None = None         # a reason: nothing to send, on purpose
    error: str | None = None           # translated, but the format refuses it (no contact, ...)
    updated_at: datetime | None = None # date_modified_gmt, UTC
    warnings: tuple[str, ...] = ()


def options_of(shop) -> Options:
    """Options from a ShopConfig: its prefix, status_map overrides and `abandoned_carts`."""
    status_map = dict(DEFAULT_STATUS_MAP)
    if shop.get("abandoned_carts", False):
        status_map["checkout-draft"] = "ABANDONED_SHOPPING_CART"
    for woo, ours in (shop.status_map or {}).items():
        value = str(ours).strip().upper()
        if value not in STATUSES and value != IGNORE:
            raise ConfigError(f"[[shops]] {shop.name}: status_map.{woo} must be one of "
                              f"{', '.join(STATUSES)} or IGNORE; got {ours!r}")
        status_map[str(woo).strip().lower().removeprefix("wc-")] = value
    return Options(order_id_prefix=shop.order_id_prefix or "", status_map=status_map)


def unwrap(payload: Any) -> dict:
    """The order object: also accepts the WordPress.com proxy's {"data": {...}}; refuses legacy payloads."""
    if isinstance(payload, dict) and "id" not in payload and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    if isinstance(payload, dict) and "id" not in payload and isinstance(payload.get("order"), dict):
        raise InvalidInput("a legacy REST API payload ({\"order\": ...}): set the webhook's API version "
                           "to \"WP REST API Integration v3\" in WooCommerce → Settings → Advanced → Webhooks")
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int) or isinstance(payload.get("id"), bool):
        raise InvalidInput("not a WooCommerce order: expected a JSON object with an integer \"id\"")
    return payload


def orders_of(payload: Any) -> list[dict]:
    """The orders of a list response (a JSON array, or {"data": [...]} through the WordPress.com proxy)."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        payload = payload["data"]
    if not isinstance(payload, list):
        raise InvalidInput("expected a JSON array of orders")
    return payload


def _key(woo_status) -> str:
    return str(woo_status or "").strip().lower().removeprefix("wc-")


def map_status(woo_status: str, options: Options) -> str:
    """The Yespo status of a WooCommerce status (IGNORE for drafts); unknown statuses are INITIALIZED."""
    key = _key(woo_status)
    table = options.status_map or DEFAULT_STATUS_MAP
    return table.get(key) or DEFAULT_STATUS_MAP.get(key) or "INITIALIZED"


def translate(payload: Any, options: Options = Options(), products: Mapping[int, Product] | None = None) -> Translation:
    """Translate one WooCommerce order. Raises InvalidInput only when the JSON is not an order at all."""
    raw = unwrap(payload)
    oid = f"{options.order_id_prefix}{raw['id']}"
    woo_status = str(raw.get("status") or "")
    status = map_status(woo_status, options)
    updated_at = modified_date(raw)
    if status == IGNORE:
        return Translation(oid, ignored=f"status {woo_status!r} is not an order yet (see status_map / abandoned_carts)",
                           updated_at=updated_at)
    incl = bool(raw.get("prices_include_tax"))
    wire, warnings = build_wire(raw, options.order_id_prefix, status, products or {})
    try:
        order = parse_order(wire)
    except InvalidOrder as e:
        if status == "ABANDONED_SHOPPING_CART" and "externalCustomerId/email/phone" in e.message:
            # A block-checkout draft is re-saved before the buyer types an email: nobody to remind yet.
            return Translation(oid, ignored="a checkout draft without email or phone yet", updated_at=updated_at)
        return Translation(oid, wire=wire, error=e.message, updated_at=updated_at, warnings=tuple(warnings))
    return Translation(oid, order=order, wire=order_to_wire(order), updated_at=updated_at,
                       warnings=tuple(warnings + reconcile(order, incl)))


# ---- the pieces of an order ---------------------------------------------------------------------------

def build_wire(raw: dict, prefix: str, status: str, products: Mapping[int, Product]) -> tuple[dict, list[str]]:
    """The add-orders object before validation, and what could not be read."""
    warnings: list[str] = []
    currency = str(raw.get("currency") or "").upper()
    incl = bool(raw.get("prices_include_tax"))
    date = order_date(raw)
    if date is None:
        warnings.append("date: date_created_gmt is missing or malformed and no site offset could be derived")
    items, spread = _items(raw, incl, products)
    bill, ship = _addr(raw, "billing"), _addr(raw, "shipping")
    wire: dict[str, Any] = {
        "externalOrderId": f"{prefix}{raw['id']}",
        "totalCost": _money(raw.get("total")),
        "status": status,
        "statusDescription": raw.get("status") or None,
        "date": date.isoformat() if date else None,
        "currency": currency,
        "externalCustomerId": _customer_id(raw, prefix),
        "email": _text(bill.get("email")),
        "phone": normalise_phone(bill.get("phone")) or normalise_phone(ship.get("phone")),   # shipping.phone: WC ≥ 5.6
        "firstName": _text(bill.get("first_name")) or _text(ship.get("first_name")),
        "lastName": _text(bill.get("last_name")) or _text(ship.get("last_name")),
        "shipping": _sum(raw.get("shipping_total"), raw.get("shipping_tax") if incl else 0),
        "discount": _sum(raw.get("discount_total") or 0, raw.get("discount_tax") if incl else 0, spread),
        "taxes": _money(raw.get("total_tax")),
        "deliveryMethod": _join(html.unescape(str(s.get("method_title") or "")) for s in _list(raw, "shipping_lines")),
        "paymentMethod": _text(html.unescape(str(raw.get("payment_method_title") or ""))) or _text(raw.get("payment_method")),
        "deliveryAddress": delivery_address(raw),
        "additionalInfo": _additional_info(raw),
        "items": items,
    }
    if status == "ABANDONED_SHOPPING_CART" and raw.get("payment_url") and _key(raw.get("status")) in PAYABLE:
        wire["restoreUrl"] = raw["payment_url"]
    return {k: v for k, v in wire.items() if v is not None}, warnings


def _items(raw: dict, incl: bool, products: Mapping[int, Product]) -> tuple[list[dict], Decimal]:
    """Product lines then positive fees; negative fees spread over the product lines (see module doc)."""
    lines = _list(raw, "line_items")
    totals = [_sum(li.get("total"), li.get("total_tax") if incl else 0) or Decimal(0) for li in lines]
    fees = [(f, _sum(f.get("total"), f.get("total_tax") if incl else 0) or Decimal(0)) for f in _list(raw, "fee_lines")]
    negative = -sum((amount for _, amount in fees if amount < 0), Decimal(0))
    totals = _spread(totals, negative)
    items = [line_item(li, total, products) for li, total in zip(lines, totals)]
    items += [{"externalItemId": f"fee-{f.get('id')}", "name": html.unescape(str(f.get("name") or "fee")),
               "quantity": 1, "cost": str(amount)} for f, amount in fees if amount > 0]
    return items, negative


def line_item(li: dict, line_total: Decimal, products: Mapping[int, Product]) -> dict:
    """One product line: the variation, else the product, else (deleted product) the line itself."""
    product_id = _int(li.get("product_id"))
    item_id = _int(li.get("variation_id")) or product_id
    qty = to_decimal(li.get("quantity") or 0)
    item: dict[str, Any] = {
        "externalItemId": str(item_id) if item_id else f"line-{li.get('id')}",
        "name": html.unescape(str(li.get("name") or "")) or None,
        "quantity": str(qty),
        "cost": str(line_total / qty) if qty > 0 else None,
    }
    image = li.get("image")
    if isinstance(image, dict) and image.get("src"):
        item["imageUrl"] = str(image["src"])
    known = products.get(product_id) if product_id else None
    if known:
        item.update({k: v for k, v in (("url", known.url), ("category", known.category)) if v})
    return {k: v for k, v in item.items() if v is not None}


def _spread(totals: list[Decimal], amount: Decimal) -> list[Decimal]:
    """Take `amount` off the line totals in proportion to them (the last line takes the remainder)."""
    base = sum(totals, Decimal(0))
    if amount <= 0 or base <= 0:
        return totals
    amount = min(amount, base)
    out, left = [], amount
    for i, t in enumerate(totals):
        share = left if i == len(totals) - 1 else (amount * t / base).quantize(Decimal("0.000001"))
        out.append(t - share)
        left -= share
    return out


def order_date(raw: dict) -> datetime | None:
    """date_created_gmt as UTC; else date_created shifted by the site offset seen on another date pair."""
    gmt = gmt_date(raw.get("date_created_gmt"))
    if gmt is not None:
        return gmt
    if is_v1(raw):
        return gmt_date(raw.get("date_created"))
    local = _naive(raw.get("date_created"))
    if local is None:
        return None
    for name in ("date_modified", "date_paid", "date_completed"):
        a, b = _naive(raw.get(name)), _naive(raw.get(f"{name}_gmt"))
        if a and b:
            return (local - (a - b)).replace(tzinfo=timezone.utc)
    return None


def modified_date(raw: dict) -> datetime | None:
    """When the order last changed, UTC (orders the versions of one order)."""
    if is_v1(raw):
        return gmt_date(raw.get("date_modified"))
    return gmt_date(raw.get("date_modified_gmt"))


def is_v1(raw: dict) -> bool:
    """An order in the wc/v1 shape (a webhook whose API version is "WP REST API Integration v1"): it has no
    *_gmt dates, and its date_created/date_modified are UTC (WooCommerce's v1 controller: "v1 API used UTC")."""
    if "date_created_gmt" in raw:
        return False
    links = raw.get("_links")
    selves = links.get("self") if isinstance(links, dict) else None
    href = selves[0].get("href") if isinstance(selves, list) and selves and isinstance(selves[0], dict) else None
    return isinstance(href, str) and "/wc/v1/" in href


def delivery_address(raw: dict) -> str | None:
    """The shipping address when it has one, else the billing address, as one line."""
    for kind in ("shipping", "billing"):
        addr = _addr(raw, kind)
        parts = [str(addr.get(p) or "").strip() for p in _ADDRESS_PARTS]
        if any(parts[:3]):   # a country or state alone is not an address
            return ", ".join(p for p in parts if p)
    return None


def _customer_id(raw: dict, prefix: str) -> str | None:
    # customer_id 0 is a guest. WooCommerce ids are small per-site numbers, so the shop's prefix keeps
    # customers of several shops apart in one account, as it does for orders.
    cid = _int(raw.get("customer_id"))
    return f"{prefix}{cid}" if cid > 0 else None


def _additional_info(raw: dict) -> dict[str, str] | None:
    info = {}
    if raw.get("number") not in (None, ""):
        info["orderNumber"] = str(raw["number"])
    if _text(raw.get("customer_note")):
        info["comment"] = str(raw["customer_note"]).strip()
    codes = _join(str(c.get("code") or "") for c in _list(raw, "coupon_lines"))
    if codes:
        info["coupons"] = codes
    refunded = sum((abs(_money(r.get("total")) or 0) for r in _list(raw, "refunds")), Decimal(0))
    if refunded:
        info["refunded"] = str(refunded)
    return info or None


def reconcile(order: Order, prices_include_tax: bool) -> list[str]:
    """A warning when Σ cost × qty + shipping (+ taxes when prices exclude tax) misses totalCost."""
    if not order.items or any(i.cost is None for i in order.items):
        return []
    goods = sum((i.cost * i.quantity for i in order.items), Decimal(0)) + (order.shipping or 0)
    qty = sum((i.quantity for i in order.items), Decimal(0))
    # Unit prices are rounded to the minor unit, so each unit may be off by half a unit.
    tolerance = Decimal(1).scaleb(-minor_unit(order.currency)) * (qty / 2 + 1)
    expected = goods if prices_include_tax else goods + (order.taxes or 0)
    if abs(order.totalCost - expected) <= tolerance:
        return []
    how = "items + shipping" if prices_include_tax else "items + shipping + taxes"
    return [f"totalCost {order.totalCost} does not reconcile: {how} = {round_money(expected, order.currency)}"]


# ---- small readers: WooCommerce sends money as strings, ids as ints, blanks as "" --------------------

def _money(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return to_decimal(value)
    except ValueError:
        return None


def _sum(*values: Any) -> Decimal | None:
    parts = [v if isinstance(v, Decimal) else _money(v) for v in values]
    return None if parts[0] is None else sum((p for p in parts if p is not None), Decimal(0))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _join(values) -> str | None:
    seen = list(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    return ", ".join(seen) or None


def _addr(raw: dict, kind: str) -> dict:
    value = raw.get(kind)
    return value if isinstance(value, dict) else {}


def _list(raw: dict, key: str) -> list[dict]:
    return [x for x in raw.get(key) or [] if isinstance(x, dict)]


def _naive(value: Any) -> datetime | None:
    # Tolerates the malformed dates real (hand-edited) orders carry, e.g. "2021-1008T14:54:36".
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip().removesuffix("Z")).replace(tzinfo=None)
    except ValueError:
        return None


def gmt_date(value: Any) -> datetime | None:
    dt = _naive(value)
    return dt.replace(tzinfo=timezone.utc) if dt else None
