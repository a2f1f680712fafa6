"""Shopify order and checkout JSON (webhook/REST shape) → add-orders `Order`: pure functions.

No I/O, no clock, no config beyond the arguments. Money follows DESIGN.md section 3: an item's
`cost` is its unit price after every discount allocated to it, so that
Σ cost × quantity + shipping (+ taxes when prices exclude tax) = totalCost within rounding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timezone
from decimal import Decimal
from typing import Any, Mapping

from connector.errors import ConfigError
from connector.format import STATUSES, Order, normalise_phone, parse_date, parse_order
from connector.money import minor_unit, round_money, to_decimal


ABANDONED, CANCELLED, DELIVERED, IN_PROGRESS, INITIALIZED = (
    "ABANDONED_SHOPPING_CART", "CANCELLED", "DELIVERED", "IN_PROGRESS", "INITIALIZED")

# DESIGN.md section 3, top-down, first match wins. A token is `cancelled` (cancelled_at set), a
# financial_status or a fulfillment_status value (`unfulfilled` when it is null). A shop's
# `status_map` changes the status of a listed token in place; tokens it adds that are not listed
# here are checked after these rows (fulfilment values before financial ones), before the fallback.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("cancelled", CANCELLED),
    ("voided", CANCELLED),
    ("refunded", CANCELLED),
    ("fulfilled", DELIVERED),
    ("paid", IN_PROGRESS),
    ("authorized", IN_PROGRESS),
    ("partially_paid", IN_PROGRESS),
    ("partially_refunded", IN_PROGRESS),
    ("partial", IN_PROGRESS),
)
FALLBACK_KEY = "default"          # status_map key for "everything else" (INITIALIZED by default)
CURRENCY_MODES = ("shop", "presentment")
ITEM_ID_MODES = ("product", "variant")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZERO = Decimal(0)


class Untranslatable(ValueError):
    """A payload that is not an order at all (no id, no total): the delivery is marked failed."""


@dataclass(frozen=True)
class Product:
    """What the Admin API knows about a product and order payloads do not carry."""

    url: str | None = None
    imageUrl: str | None = None
    category: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Translated:
    """A translated order: its wire dict, validated `Order` (None when not sendable) and checks."""

    wire: dict
    order: Order | None
    error: str | None = None          # why the order cannot be sent (InvalidOrder message)
    mismatch: Decimal | None = None   # totalCost − (Σ items + shipping [+ taxes]) when beyond rounding

    @property
    def external_order_id(self) -> str:
        return str(self.wire.get("externalOrderId"))


# ---- options ------------------------------------------------------------------------------------

def status_rules(status_map: Mapping[str, str] | None, shop_name: str = "") -> tuple[list[tuple[str, str]], str]:
    """The ordered rule list and the fallback status for a shop's `status_map`."""
    overrides = {str(k).strip().lower(): str(v).strip().upper() for k, v in (status_map or {}).items()}
    for k, v in overrides.items():
        if v not in STATUSES:
            raise ConfigError(f"[[shops]] {shop_name}: status_map {k!r} = {v!r}; expected one of {', '.join(STATUSES)}")
    rules = [(tok, overrides.get(tok, st)) for tok, st in DEFAULT_RULES]
    listed = {tok for tok, _ in DEFAULT_RULES} | {FALLBACK_KEY}
    extra = [k for k in overrides if k not in listed]
    fulfilment_like = ("fulfilled", "partial", "restocked", "unfulfilled", "in_progress", "on_hold", "scheduled")
    extra.sort(key=lambda k: 0 if k in fulfilment_like else 1)
    rules += [(k, overrides[k]) for k in extra]
    return rules, overrides.get(FALLBACK_KEY, INITIALIZED)


def order_status(payload: Mapping, status_map: Mapping[str, str] | None = None, shop_name: str = "") -> str:
    """The add-orders status of a Shopify order (never ABANDONED_SHOPPING_CART: that is checkouts)."""
    tokens = {str(payload.get("financial_status") or "").lower(),
              str(payload.get("fulfillment_status") or "unfulfilled").lower()}
    if payload.get("cancelled_at"):
        tokens.add("cancelled")
    rules, fallback = status_rules(status_map, shop_name)
    return next((st for tok, st in rules if tok in tokens), fallback)


# ---- small readers -----------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _email(*candidates: Any) -> str | None:
    for c in candidates:
        text = _text(c)
        if text and _EMAIL.match(text):
            return text
    return None


def _phone(*candidates: Any) -> str | None:
    for c in candidates:
        digits = normalise_phone(c)
        if digits:
            return digits
    return None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


class _Money:
    """Reads amounts in one currency for one order: shop money, or presentment money when asked.

    Shopify gives both in every `*_set`; the plain fields (`total_price`, `price`) are shop money.
    Mixing the two in one order is the pitfall this object exists to avoid.
    """

    def __init__(self, payload: Mapping, mode: str):
        shop_cur = _text(payload.get("currency"))
        pres_cur = _text(payload.get("presentment_currency"))
        self.presentment = mode == "presentment" and bool(pres_cur) and pres_cur != shop_cur \
            and isinstance(payload.get("total_price_set"), dict)
        self.currency = (pres_cur if self.presentment else shop_cur or pres_cur or "").upper()

    def amount(self, obj: Mapping, plain: str, set_key: str | None = None) -> Decimal | None:
        """`obj[plain]` in shop money, or `obj[set_key].presentment_money.amount`."""
        set_key = set_key or f"{plain}_set"
        if self.presentment:
            value = _dict(_dict(obj.get(set_key)).get("presentment_money")).get("amount")
        else:
            value = obj.get(plain)
            if value is None:
                value = _dict(_dict(obj.get(set_key)).get("shop_money")).get("amount")
        if value is None or value == "":
            return None
        return to_decimal(value)

    def allocations(self, line: Mapping, key: str = "discount_allocations") -> Decimal:
        return sum((self.amount(a, "amount") or _ZERO for a in line.get(key) or () if isinstance(a, dict)), _ZERO)


# ---- orders -------------------------------------------------------------------------------------

def _contact(payload: Mapping) -> dict:
    customer = _dict(payload.get("customer"))
    billing, shipping = _dict(payload.get("billing_address")), _dict(payload.get("shipping_address"))
    default = _dict(customer.get("default_address"))
    out = {
        "externalCustomerId": _text(customer.get("id")),
        "email": _email(payload.get("email"), payload.get("contact_email"), customer.get("email")),
        "phone": _phone(payload.get("phone"), customer.get("phone"), billing.get("phone"),
                        shipping.get("phone"), default.get("phone")),
    }
    for wire_key, key in (("firstName", "first_name"), ("lastName", "last_name")):
        out[wire_key] = next((t for t in (_text(src.get(key)) for src in (customer, billing, shipping)) if t), None)
    return out


def _address(addr: Mapping) -> str | None:
    parts = [_text(addr.get(k)) for k in ("address1", "address2", "city", "province", "zip", "country")]
    text = ", ".join(p for p in parts if p)
    return text or None


def item_id(line: Mapping, mode: str = "product") -> str | None:
    """The product id (or the variant id, per the shop's `item_id`); custom lines fall back to sku, then line id."""
    order = ("variant_id", "product_id") if mode == "variant" else ("product_id", "variant_id")
    for key in (*order, "sku", "id", "key"):
        text = _text(line.get(key))
        if text:
            return text
    return None


def _item(line: Mapping, money: _Money, item_mode: str, products: Mapping[str, Product]) -> dict:
    qty = to_decimal(line.get("quantity") or 0)
    price = money.amount(line, "price") or _ZERO
    line_total = price * qty - money.allocations(line)
    item: dict[str, Any] = {"externalItemId": item_id(line, item_mode), "quantity": qty,
                            "name": _text(line.get("name")) or _text(line.get("title"))}
    if qty > 0:
        item["cost"] = round_money(max(line_total, _ZERO) / qty, money.currency or "USD")
    product = products.get(str(line.get("product_id"))) if line.get("product_id") is not None else None
    if product:
        item.update({k: v for k, v in vars(product).items() if v})
    return {k: v for k, v in item.items() if v is not None}


def _shipping(payload: Mapping, money: _Money) -> Decimal | None:
    lines = [s for s in payload.get("shipping_lines") or () if isinstance(s, dict) and not s.get("is_removed")]
    if not lines:
        return money.amount(payload, "total_shipping_price", "total_shipping_price_set")
    total = _ZERO
    for s in lines:
        discounted = money.amount(s, "discounted_price")
        total += discounted if discounted is not None else (money.amount(s, "price") or _ZERO) - money.allocations(s)
    return total


def _additional_info(payload: Mapping) -> dict:
    info = {
        "orderNumber": _text(payload.get("name")),
        "financialStatus": _text(payload.get("financial_status")),
        "fulfillmentStatus": _text(payload.get("fulfillment_status")),
        "cancelReason": _text(payload.get("cancel_reason")) if payload.get("cancelled_at") else None,
        "discountCodes": ", ".join(c for c in (_text(_dict(d).get("code")) for d in payload.get("discount_codes") or ()) if c) or None,
        "sourceName": _text(payload.get("source_name")),
        "test": "true" if payload.get("test") is True else None,
    }
    return {k: v for k, v in info.items() if v is not None}


def _options(shop) -> tuple[str, str]:
    currency_mode = str(shop.get("currency", "shop")).lower()
    if currency_mode not in CURRENCY_MODES:
        raise ConfigError(f"[[shops]] {shop.name}: currency must be \"shop\" or \"presentment\"; got {currency_mode!r}")
    item_mode = str(shop.get("item_id", "product")).lower()
    if item_mode not in ITEM_ID_MODES:
        raise ConfigError(f"[[shops]] {shop.name}: item_id must be \"product\" or \"variant\"; got {item_mode!r}")
    return currency_mode, item_mode


def order_wire(payload: Mapping, shop, products: Mapping[str, Product] | None = None) -> dict:
    """The add-orders wire dict of a Shopify order (not yet validated)."""
    if not isinstance(payload, Mapping) or payload.get("id") in (None, ""):
        raise Untranslatable("not a Shopify order: no id")
    currency_mode, item_mode = _options(shop)
    money = _Money(payload, currency_mode)
    status = order_status(payload, shop.status_map, shop.name)
    lines = [li for li in payload.get("line_items") or () if isinstance(li, dict)]
    wire: dict[str, Any] = {
        "externalOrderId": f"{shop.order_id_prefix}{payload['id']}",
        "status": status,
        "date": _text(payload.get("processed_at")) or _text(payload.get("created_at")),
        "currency": money.currency,
        "totalCost": money.amount(payload, "total_price"),
        "shipping": _shipping(payload, money),
        "discount": money.amount(payload, "total_discounts"),
        "taxes": money.amount(payload, "total_tax"),
        "statusDescription": _text(payload.get("cancel_reason")) if status == CANCELLED else None,
        "deliveryMethod": next((_text(s.get("title")) for s in payload.get("shipping_lines") or () if isinstance(s, dict)), None),
        "paymentMethod": next(iter(payload.get("payment_gateway_names") or ()), None) or _text(payload.get("gateway")),
        "deliveryAddress": _address(_dict(payload.get("shipping_address"))),
        "source": "offline" if payload.get("source_name") == "pos" else "online",
        "storeId": _text(shop.get("store_id")),
        "additionalInfo": _additional_info(payload),
        **_contact(payload),
    }
    if lines:
        wire["items"] = [_item(li, money, item_mode, products or {}) for li in lines]
    return _finish(wire, money.currency)


def _finish(wire: dict, currency: str) -> dict:
    """Drop absent values; round money to the currency's minor unit; numbers stay Decimal until validated."""
    out = {k: v for k, v in wire.items() if v is not None and v != {}}
    for k in ("totalCost", "shipping", "discount", "taxes"):
        if isinstance(out.get(k), Decimal) and currency:
            out[k] = round_money(out[k], currency)
    return out


def mismatch(wire: Mapping, taxes_included: bool) -> Decimal | None:
    """How far totalCost is from Σ cost × quantity + shipping (+ taxes), or None within rounding."""
    items = wire.get("items") or ()
    if not items or any("cost" not in i for i in items) or wire.get("totalCost") is None:
        return None
    total = sum((to_decimal(i["cost"]) * to_decimal(i["quantity"]) for i in items), _ZERO)
    total += to_decimal(wire.get("shipping") or 0)
    if not taxes_included:
        total += to_decimal(wire.get("taxes") or 0)
    diff = to_decimal(wire["totalCost"]) - total
    # Each unit cost is rounded to the minor unit: allow half a minor unit per unit, plus one.
    unit = Decimal(1).scaleb(-minor_unit(str(wire.get("currency") or "USD")))
    tolerance = unit * (sum((to_decimal(i["quantity"]) for i in items), _ZERO) / 2 + 1)
    return diff if abs(diff) > tolerance else None


def validate(wire: dict, taxes_included: bool = False) -> Translated:
    """Validate a wire dict into an `Order`; keep the reason when it cannot be sent."""
    from connector.format import InvalidOrder, order_to_wire
    diff = mismatch(wire, taxes_included)
    try:
        order = parse_order(_jsonable(wire))
    except InvalidOrder as e:
        return Translated(wire=_jsonable(wire), order=None, error=e.message, mismatch=diff)
    return Translated(wire=order_to_wire(order), order=order, mismatch=diff)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def translate_order(payload: Mapping, shop, products: Mapping[str, Product] | None = None) -> Translated:
    """A Shopify order (webhook or REST shape) → a validated order, or the reason it cannot be sent."""
    return validate(order_wire(payload, shop, products), bool(payload.get("taxes_included")))


# ---- checkouts ----------------------------------------------------------------------------------

_TOKEN_IN_URL = re.compile(r"/checkouts/(?:[a-z]{2}/)?([A-Za-z0-9_-]+)/recover|/([0-9a-f]{32})(?:[/?]|$)")
_NUMBER = re.compile(r"^#?(\d+)$")


def checkout_key(payload: Mapping) -> str | None:
    """The stable key of a checkout: its numeric id, the one thing webhooks, REST and the GraphQL poll all
    carry. (GraphQL's AbandonedCheckout has no token, and on Shopify's new checkout the recovery URL holds the
    cart token, not the checkout's.) `name` is "#" + id: the 2026-07 docs sample has no `id` but that name.
    A checkout with neither is keyed by its token, then by the token in its recovery URL."""
    number = _text(payload.get("id"))
    if number and number.isdigit():
        return number
    m = _NUMBER.match(_text(payload.get("name")) or "")
    if m:
        return m.group(1)
    token = _text(payload.get("token"))
    if not token:
        m = _TOKEN_IN_URL.search(str(payload.get("abandoned_checkout_url") or ""))
        token = (m.group(1) or m.group(2)) if m else None
    return token or number


def earlier_checkout_keys(payload: Mapping) -> list[str]:
    """The keys a checkout had before it was keyed by its id: its token (webhooks) and the token in its
    recovery URL (the poll). A checkout open across that upgrade keeps the key it was first sent under."""
    m = _TOKEN_IN_URL.search(str(payload.get("abandoned_checkout_url") or ""))
    keys = [_text(payload.get("token")), (m.group(1) or m.group(2)) if m else None]
    return list(dict.fromkeys(k for k in keys if k))


def _utc_date(*candidates: Any) -> str | None:
    """The first readable date, in UTC. Checkout webhooks write created_at in UTC and updated_at in the
    shop's offset, the poll writes both in the shop's: one instant must read alike whichever way it came."""
    for c in candidates:
        try:
            return parse_date(c).astimezone(timezone.utc).isoformat()
        except (ValueError, TypeError):
            continue
    return next((t for t in map(_text, candidates) if t), None)


def _checkout_shipping(payload: Mapping, money: _Money) -> Decimal | None:
    """Shipping of a checkout: total − subtotal − duties (− taxes unless included). The GraphQL
    AbandonedCheckout has no shipping lines, so they are not read from webhooks either."""
    total, subtotal = money.amount(payload, "total_price"), money.amount(payload, "subtotal_price")
    if total is None or subtotal is None:
        return None
    rest = total - subtotal - (money.amount(payload, "total_duties") or _ZERO)
    if not payload.get("taxes_included"):
        rest -= money.amount(payload, "total_tax") or _ZERO
    return rest if rest >= 0 else None


def checkout_wire(payload: Mapping, shop, products: Mapping[str, Product] | None = None) -> dict | None:
    """An abandoned checkout as ABANDONED_SHOPPING_CART; None when the checkout was completed.

    Only what the webhook, REST and GraphQL shapes all carry goes in, the same way from each: a poll
    re-reading a checkout a webhook brought then enqueues nothing (another version is another event)."""
    if payload.get("completed_at"):
        return None
    key = checkout_key(payload)
    if not key:
        raise Untranslatable("not a Shopify checkout: no id, token or recovery URL")
    currency_mode, item_mode = _options(shop)
    money = _Money(payload, currency_mode)
    lines = [li for li in payload.get("line_items") or () if isinstance(li, dict)]
    info = {"orderNumber": _text(payload.get("name"))}
    wire: dict[str, Any] = {
        "externalOrderId": f"{shop.order_id_prefix}checkout-{key}",
        "status": ABANDONED,
        "date": _utc_date(payload.get("created_at"), payload.get("updated_at")),
        "currency": money.currency,
        "totalCost": money.amount(payload, "total_price"),
        "shipping": _checkout_shipping(payload, money),
        "discount": money.amount(payload, "total_discounts"),
        "taxes": money.amount(payload, "total_tax"),
        "restoreUrl": _text(payload.get("abandoned_checkout_url")),
        "deliveryAddress": _address(_dict(payload.get("shipping_address"))),
        "source": "online",
        "storeId": _text(shop.get("store_id")),
        "additionalInfo": {k: v for k, v in info.items() if v},
        **_contact(payload),
    }
    if lines:
        wire["items"] = [_item(li, money, item_mode, products or {}) for li in lines]
    return _finish(wire, money.currency)


def translate_checkout(payload: Mapping, shop, products: Mapping[str, Product] | None = None) -> Translated | None:
    """A Shopify checkout → a validated ABANDONED_SHOPPING_CART order; None when it was completed."""
    wire = checkout_wire(payload, shop, products)
    return None if wire is None else validate(wire, bool(payload.get("taxes_included")))


def has_contact(wire: Mapping) -> bool:
    return any(wire.get(k) for k in ("externalCustomerId", "email", "phone"))
