"""The Yespo add-orders format: the domain order, the wire schema and the rules.

This module is the single definition of the wire format, shared by the connector (which sends
it) and the bundled backend (which receives it). Input is read leniently, as Yespo reads it
(numeric strings are numbers, ids may be numbers, status in any case); output is strict
(digits-only phones, ISO 8601 dates with an offset, money rounded to the currency's minor unit).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validates_schema

from connector.money import ISO_4217, round_money, to_decimal, to_json_number

MAX_ORDERS_PER_REQUEST = 1000

STATUSES = ("INITIALIZED", "IN_PROGRESS", "DELIVERED", "CANCELLED", "ABANDONED_SHOPPING_CART")
CONTACT_FIELDS = ("externalCustomerId", "email", "phone")
MIN_PHONE_DIGITS = 5

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NON_DIGITS = re.compile(r"\D+")


# ---- the domain order ---------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    externalItemId: str
    quantity: Decimal
    name: str | None = None
    category: str | None = None
    cost: Decimal | None = None
    url: str | None = None
    imageUrl: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Order:
    externalOrderId: str
    totalCost: Decimal
    status: str
    date: datetime
    currency: str
    externalCustomerId: str | None = None
    email: str | None = None
    phone: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    shipping: Decimal | None = None
    discount: Decimal | None = None
    taxes: Decimal | None = None
    restoreUrl: str | None = None
    statusDescription: str | None = None
    storeId: str | None = None
    source: str | None = None
    deliveryMethod: str | None = None
    paymentMethod: str | None = None
    deliveryAddress: str | None = None
    additionalInfo: dict[str, str] = field(default_factory=dict)
    items: tuple[Item, ...] = ()


ORDER_MONEY = ("totalCost", "shipping", "discount", "taxes")


# ---- normalisers (also used by adapters and the backend) -----------------------------------

def normalise_phone(value: Any) -> str | None:
    """Digits only, country code kept when given, never guessed; too short → None (omitted)."""
    if value is None:
        return None
    digits = _NON_DIGITS.sub("", str(value))
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


def normalise_email(value: Any) -> str | None:
    """Trimmed email, or None when blank. Case is kept; matching compares lower case."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_date(value: Any, *, naive_as_utc: bool = False) -> datetime:
    """An ISO 8601 date-time with an offset (`Z` allowed). Raises ValueError saying what is wrong."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date-time: {text[:40]!r}") from None
    else:
        raise ValueError("expected an ISO 8601 date-time string")
    if dt.tzinfo is None:
        if not naive_as_utc:
            raise ValueError("needs a UTC offset, e.g. 2017-03-08T09:30:00+02:00")
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def format_date(dt: datetime) -> str:
    """ISO 8601 with its offset, whole seconds unless the source had a fraction."""
    return dt.isoformat()


# ---- marshmallow fields: lenient readers ---------------------------------------------------

class Text(fields.Field):
    """A string; numbers become strings (shop ids are often numbers); blank becomes None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise ValidationError("expected a string")
        text = str(value).strip()
        return text or None


class Money(fields.Field):
    """A non-negative number or numeric string, kept as Decimal (rounded in post_load)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            d = to_decimal(value)
        except ValueError as e:
            raise ValidationError(str(e)) from None
        if d < 0:
            raise ValidationError("must not be negative")
        return d


class Quantity(Money):
    pass


class DateTime(fields.Field):
    def __init__(self, naive_as_utc: bool = False, **kw):
        super().__init__(**kw)
        self.naive_as_utc = naive_as_utc

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_date(value, naive_as_utc=self.naive_as_utc)
        except ValueError as e:
            raise ValidationError(str(e)) from None


class Status(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        text = str(value).strip().upper() if isinstance(value, str) else None
        if text not in STATUSES:
            raise ValidationError(f"must be one of {', '.join(STATUSES)}; got {str(value)[:40]!r}")
        return text


class Currency(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        text = value.strip().upper() if isinstance(value, str) else ""
        if text not in ISO_4217:
            raise ValidationError(f"expected an ISO 4217 code such as USD; got {str(value)[:20]!r}")
        return text


class Email(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        text = normalise_email(value) if isinstance(value, str) else None
        if text is not None and not _EMAIL.match(text):
            raise ValidationError(f"not an email address: {text[:60]!r}")
        if text is None and value not in (None, "") and not isinstance(value, str):
            raise ValidationError("expected a string")
        return text


class Phone(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (bool, dict, list)):
            raise ValidationError("expected a string of digits")
        return normalise_phone(value)


class StringMap(fields.Field):
    """additionalInfo: a flat map of strings; numbers and booleans become strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("expected an object of strings")
        out = {}
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                raise ValidationError(f"{k}: expected a string, got a nested value")
            if v is not None:
                out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
        return out


def _opt(f: type[fields.Field], **kw) -> fields.Field:
    return f(required=False, allow_none=True, load_default=None, **kw)


# ---- the wire schema -----------------------------------------------------------------------

class ItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    externalItemId = Text(required=True)
    quantity = Quantity(required=True)
    name = _opt(Text)
    category = _opt(Text)
    cost = _opt(Money)
    url = _opt(Text)
    imageUrl = _opt(Text)
    description = _opt(Text)

    @validates_schema
    def _item_id_present(self, data, **kw):
        if data.get("externalItemId") is None:
            raise ValidationError("must not be empty", "externalItemId")


class OrderSchema(Schema):
    """One order of `POST /api/v1/orders`. Unknown fields are ignored, as Yespo ignores them."""

    class Meta:
        unknown = EXCLUDE

    naive_dates_as_utc = False

    externalOrderId = Text(required=True)
    totalCost = Money(required=True)
    status = Status(required=True)
    date = DateTime(required=True)
    currency = Currency(required=True)
    externalCustomerId = _opt(Text)
    email = _opt(Email)
    phone = _opt(Phone)
    firstName = _opt(Text)
    lastName = _opt(Text)
    shipping = _opt(Money)
    discount = _opt(Money)
    taxes = _opt(Money)
    restoreUrl = _opt(Text)
    statusDescription = _opt(Text)
    storeId = _opt(Text)
    source = _opt(Text)
    deliveryMethod = _opt(Text)
    paymentMethod = _opt(Text)
    deliveryAddress = _opt(Text)
    additionalInfo = _opt(StringMap)
    items = fields.List(fields.Nested(ItemSchema), required=False, allow_none=True, load_default=None)

    def __init__(self, *a, naive_dates_as_utc: bool = False, **kw):
        super().__init__(*a, **kw)
        self.fields["date"].naive_as_utc = naive_dates_as_utc

    @pre_load
    def _object(self, data, **kw):
        if not isinstance(data, dict):
            raise ValidationError("expected a JSON object", "_schema")
        return data

    @validates_schema
    def _rules(self, data, **kw):
        if data.get("externalOrderId") is None and "externalOrderId" in data:
            raise ValidationError("must not be empty", "externalOrderId")
        if not any(data.get(f) for f in CONTACT_FIELDS):
            raise ValidationError("at least one of externalCustomerId, email, phone is required "
                                  "(a phone needs 5 digits or more)", "externalCustomerId/email/phone")

    @post_load
    def _to_order(self, data, **kw) -> Order:
        cur = data["currency"]
        for k in ORDER_MONEY:
            if data.get(k) is not None:
                data[k] = round_money(data[k], cur)
        items = tuple(
            Item(**{**i, "cost": round_money(i["cost"], cur) if i.get("cost") is not None else None})
            for i in data.pop("items") or ()
        )
        data["additionalInfo"] = data.get("additionalInfo") or {}
        return Order(**data, items=items)


class InvalidOrder(ValueError):
    """An order the format refuses; `message` reads `<field>: <what is wrong>`."""

    def __init__(self, message: str, fields_: dict | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields_ or {}


def _flatten(messages, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(messages, dict):
        for k, v in messages.items():
            if k == "_schema":
                out += _flatten(v, prefix)
                continue
            key = f"{prefix}[{k}]" if isinstance(k, int) else (f"{prefix}.{k}" if prefix else str(k))
            out += _flatten(v, key)
    elif isinstance(messages, list):
        for m in messages:
            out += _flatten(m, prefix)
    else:
        text = str(messages)
        if text == "Missing data for required field.":
            text = "is required"
        elif text == "Field may not be null.":
            text = "must not be null"
        out.append(f"{prefix}: {text}" if prefix else text)
    return out


_SCHEMAS: dict[bool, OrderSchema] = {}


def parse_order(data: Any, *, naive_dates_as_utc: bool = False) -> Order:
    """Validate one wire order and return the domain order, or raise InvalidOrder."""
    schema = _SCHEMAS.get(naive_dates_as_utc)
    if schema is None:
        schema = _SCHEMAS[naive_dates_as_utc] = OrderSchema(naive_dates_as_utc=naive_dates_as_utc)
    try:
        return schema.load(data)
    except ValidationError as e:
        raise InvalidOrder("; ".join(_flatten(e.messages)) or "invalid order", e.messages) from None


# ---- strict output ---------------------------------------------------------------------------

def item_to_wire(item: Item) -> dict:
    out: dict[str, Any] = {"externalItemId": item.externalItemId, "quantity": to_json_number(item.quantity)}
    for k in ("name", "category", "url", "imageUrl", "description"):
        v = getattr(item, k)
        if v is not None:
            out[k] = v
    if item.cost is not None:
        out["cost"] = to_json_number(item.cost)
    return out


_ORDER_TEXT = ("externalCustomerId", "email", "phone", "firstName", "lastName", "restoreUrl",
               "statusDescription", "storeId", "source", "deliveryMethod", "paymentMethod", "deliveryAddress")


def order_to_wire(order: Order) -> dict:
    """The order as the add-orders API wants it: absent values left out, numbers as JSON numbers."""
    out: dict[str, Any] = {
        "externalOrderId": order.externalOrderId,
        "totalCost": to_json_number(order.totalCost),
        "status": order.status,
        "date": format_date(order.date),
        "currency": order.currency,
    }
    for k in _ORDER_TEXT:
        v = getattr(order, k)
        if v is not None:
            out[k] = v
    for k in ORDER_MONEY[1:]:
        v = getattr(order, k)
        if v is not None:
            out[k] = to_json_number(v)
    if order.additionalInfo:
        out["additionalInfo"] = dict(order.additionalInfo)
    if order.items:
        out["items"] = [item_to_wire(i) for i in order.items]
    return out


def canonical_json(wire: dict) -> str:
    """A stable text of a wire order: the same order always gives the same text."""
    return json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(wire: dict) -> str:
    """The identity of one version of an order (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(wire).encode()).hexdigest()


def request_body(orders: Iterable[dict]) -> dict:
    """The body of one add-orders request; refuses more than MAX_ORDERS_PER_REQUEST orders."""
    batch = list(orders)
    if len(batch) > MAX_ORDERS_PER_REQUEST:
        raise ValueError(f"{len(batch)} orders in one request; the limit is {MAX_ORDERS_PER_REQUEST}")
    return {"orders": batch}
