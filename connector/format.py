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
from dataclasses import fields as dataclass_fields
from datetime import datetime, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Iterable

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validates_schema

from connector.money import ISO_4217, minor_unit, quantum, round_money, to_decimal, to_json_number

MAX_ORDERS_PER_REQUEST = 1000

STATUSES = ("INITIALIZED", "IN_PROGRESS", "DELIVERED", "CANCELLED", "ABANDONED_SHOPPING_CART")
CONTACT_FIELDS = ("externalCustomerId", "email", "phone")
MIN_PHONE_DIGITS = 5
# Amounts go on the wire as JSON numbers, which receivers (Python's json, JavaScript, most JSON libraries) read
# as doubles; a double keeps 15 significant digits exactly. An amount is written with its currency's decimal
# places, so those count too: 13 digits before the decimal point for USD, 15 for JPY, 12 for KWD. Beyond, two
# amounts 0.01 apart are one double (one content hash, another amount at the receiver): refused, never rounded.
MAX_MONEY_DIGITS = 15
# read_money lets amounts this large through to the check that knows the currency; beyond, no currency takes
# them, and rounding them would leave Decimal's 28-digit precision.
_READ_DIGITS = MAX_MONEY_DIGITS + 5
_EXACT = "the most a JSON number keeps exact"
_UNROUNDED = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)   # scaleb in it only moves the exponent
# Identifiers are looked up by index (the backend's orders and contacts, the connector's heads); a database
# index entry has a size limit (PostgreSQL's btree: about 2700 bytes), so an id of thousands of characters
# would fail its whole batch there. No platform's id comes near this; an email is at most 254 (RFC 5321).
MAX_KEY_CHARS = 255
MAX_EMAIL_CHARS = 254
MAX_PHONE_DIGITS = 32

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
is_email = _EMAIL.match     # read_email's pattern, for the fused paths that check a stripped text inline
_NON_DIGITS = re.compile(r"\D+")
_CALL_PREFIX = re.compile(r"\D*00")      # written as such: `00 44…`, `Tel: 0044…`, `(0044)`, never `0 0…`
_EXTENSION = re.compile(r"(?i)(?<=\d)[\s,;.-]*(?:ext\.?|extension|x|#)\s*\d+\s*$")   # after the number only


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
    """Digits only, country code kept when given, never guessed; too short → None (omitted).

    Written international forms become the digits one dials from abroad after `+`, so that one
    customer's phone is one contact id however a form wrote it:
    - `0044 20 7946 0958`: `00` (`0011` from Australia) is the international call prefix → 4420…;
    - `+44 (0)20 7946 0958`: the `(0)` is the trunk prefix, dialled only at home → 442079460958
      (not after +39: Italian numbers keep their 0 from abroad);
    - an extension after the number (`ext. 12`, `x12`, `#12`) is not part of it and is dropped.
    """
    if value is None:
        return None
    text = str(value)
    digits = phone_digits(text)
    prefix = 0
    if digits.startswith("00") and _CALL_PREFIX.match(text):
        prefix = 4 if digits.startswith("0011") else 2     # NANP codes never start with 1: 0011 is Australia's
    if "(0)" in text and (prefix or text.lstrip()[:1] == "+") and not digits.startswith("39", prefix):
        digits = phone_digits(text.replace("(0)", "", 1))
    digits = digits[prefix:]
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


def phone_digits(text: str) -> str:
    """The digits of a written phone (any decimal digit, as the regex `\\d` reads them), without an extension."""
    # the usual separators dropped by str.replace (a third of the regex's cost); anything else, the regex
    digits = text.replace(" ", "").replace("-", "").replace("+", "").replace("(", "").replace(")", "")
    if digits.isascii() and digits.isdigit():
        return digits
    return _NON_DIGITS.sub("", _EXTENSION.sub("", text))


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
    try:
        dt.astimezone(timezone.utc)   # stored and compared in UTC: it must exist there
    except OverflowError:
        raise ValueError(f"out of range once converted to UTC: {dt.isoformat()}") from None
    return dt


def format_date(dt: datetime) -> str:
    """ISO 8601 with its offset, whole seconds unless the source had a fraction."""
    return dt.isoformat()


# ---- lenient readers: one function per field kind, shared by the schema and the fast path ---

def read_text(value) -> str | None:
    """A string; numbers become strings (shop ids are often numbers); blank becomes None."""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ValidationError("expected a string")
    text = str(value).strip()
    if "\x00" in text:   # PostgreSQL text columns refuse it; better a clear error than a failed batch
        raise ValidationError("must not contain NUL characters")
    return text or None


def read_key(value) -> str | None:
    """An identifier (externalOrderId, externalCustomerId): text of at most MAX_KEY_CHARS characters."""
    text = read_text(value)
    if text is not None and len(text) > MAX_KEY_CHARS:
        raise ValidationError(f"too long: at most {MAX_KEY_CHARS} characters; got {len(text)}")
    return text


def _read_amount(value) -> Decimal:
    """A non-negative number or numeric string as Decimal."""
    try:
        d = to_decimal(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    if d < 0:
        raise ValidationError("must not be negative")
    return d


def read_quantity(value) -> Decimal:
    """A non-negative number or numeric string, kept as Decimal: not rounded, so held to quantity_fits."""
    d = _read_amount(value)
    if not quantity_fits(d):
        raise ValidationError(f"too many digits: at most {MAX_MONEY_DIGITS} in all, before and after the decimal "
                              f"point ({_EXACT})")
    return d


def quantity_fits(d: Decimal) -> bool:
    """Whether a quantity written out (no exponent; trailing zeros after the point do not count) has at most
    MAX_MONEY_DIGITS digits: the rule for amounts, with the quantity's own decimal places, as it is not rounded."""
    adjusted = d.adjusted()                    # the position of the first digit: 2 for 123.45, -3 for 0.005
    if adjusted >= MAX_MONEY_DIGITS:
        return False
    if adjusted < -MAX_MONEY_DIGITS:           # below 1e-15 (or a zero written 0E-20)
        return not d
    # the decimal places left beside the integer digits; d fits when shifting them before the point makes it whole
    shifted = d.scaleb(MAX_MONEY_DIGITS - 1 - adjusted if adjusted >= 0 else MAX_MONEY_DIGITS, _UNROUNDED)
    return shifted == shifted.to_integral_value()


def read_money(value) -> Decimal:
    """A non-negative number or numeric string, kept as Decimal (rounded, then held to MAX_MONEY_DIGITS with
    the currency's decimal places, by the schema: see money_fits)."""
    d = _read_amount(value)
    if d.adjusted() >= _READ_DIGITS:
        raise ValidationError(f"too large: at most {MAX_MONEY_DIGITS} digits in all, the currency's decimal places "
                              f"included ({_EXACT})")
    return d


def money_fits(rounded: Decimal, q: Decimal) -> bool:
    """Whether an amount rounded to quantum `q` (its currency's minor unit) has at most MAX_MONEY_DIGITS digits,
    its decimal places included: it then reads back from a JSON number exactly."""
    return rounded.adjusted() - q.adjusted() < MAX_MONEY_DIGITS


def money_too_large(currency: str) -> str:
    """The error for an amount beyond money_fits in `currency`, naming the limit."""
    places = minor_unit(currency)
    after = f" with the {places} after it" if places else ""
    return (f"too large for {currency}: at most {MAX_MONEY_DIGITS - places} digits before the decimal point "
            f"({MAX_MONEY_DIGITS} digits in all{after}, {_EXACT})")


def read_date(value, naive_as_utc: bool) -> datetime:
    try:
        return parse_date(value, naive_as_utc=naive_as_utc)
    except ValueError as e:
        raise ValidationError(str(e)) from None


def read_status(value) -> str:
    text = str(value).strip().upper() if isinstance(value, str) else None
    if text not in STATUSES:
        raise ValidationError(f"must be one of {', '.join(STATUSES)}; got {str(value)[:40]!r}")
    return text


def read_currency(value) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if text not in ISO_4217:
        raise ValidationError(f"expected an ISO 4217 code such as USD; got {str(value)[:20]!r}")
    return text


def read_email(value) -> str | None:
    text = normalise_email(value) if isinstance(value, str) else None
    if text is not None and "\x00" in text:
        raise ValidationError("must not contain NUL characters")
    if text is not None and len(text) > MAX_EMAIL_CHARS:
        raise ValidationError(f"too long for an email address: at most {MAX_EMAIL_CHARS} characters; got {len(text)}")
    if text is not None and not _EMAIL.match(text):
        raise ValidationError(f"not an email address: {text[:60]!r}")
    if text is None and value not in (None, "") and not isinstance(value, str):
        raise ValidationError("expected a string")
    return text


def read_phone(value) -> str | None:
    if isinstance(value, (bool, dict, list)):
        raise ValidationError("expected a string of digits")
    phone = normalise_phone(value)
    if phone is not None and len(phone) > MAX_PHONE_DIGITS:
        raise ValidationError(f"too long for a phone number: at most {MAX_PHONE_DIGITS} digits; got {len(phone)}")
    return phone


def read_string_map(value) -> dict[str, str]:
    """additionalInfo: a flat map of strings; numbers and booleans become strings."""
    if not isinstance(value, dict):
        raise ValidationError("expected an object of strings")
    out = {}
    for k, v in value.items():
        if isinstance(v, (dict, list)):
            raise ValidationError(f"{k}: expected a string, got a nested value")
        if v is not None:
            out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


# ---- marshmallow fields: the readers above as schema fields --------------------------------

class Text(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_text(value)


class Key(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_key(value)


class Money(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_money(value)


def blank(value) -> bool:
    """An empty or blank string: what Yespo's WooCommerce plugin sends for an amount it does not have."""
    return type(value) is str and not value.strip()


class OptionalMoney(Money):
    """An amount that may be absent; a blank string counts as absent (reference/yespo-api.md: the official
    WooCommerce plugin sends "" for a missing shipping, discount or tax), not as a wrong number."""

    def _deserialize(self, value, attr, data, **kwargs):
        return None if blank(value) else read_money(value)


class Quantity(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_quantity(value)


class DateTime(fields.Field):
    def __init__(self, naive_as_utc: bool = False, **kw):
        super().__init__(**kw)
        self.naive_as_utc = naive_as_utc

    def _deserialize(self, value, attr, data, **kwargs):
        return read_date(value, self.naive_as_utc)


class Status(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_status(value)


class Currency(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_currency(value)


class Email(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_email(value)


class Phone(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_phone(value)


class StringMap(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        return read_string_map(value)


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
    cost = _opt(OptionalMoney)
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

    externalOrderId = Key(required=True)
    totalCost = Money(required=True)
    status = Status(required=True)
    date = DateTime(required=True)
    currency = Currency(required=True)
    externalCustomerId = _opt(Key)
    email = _opt(Email)
    phone = _opt(Phone)
    firstName = _opt(Text)
    lastName = _opt(Text)
    shipping = _opt(OptionalMoney)
    discount = _opt(OptionalMoney)
    taxes = _opt(OptionalMoney)
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
    def _amounts_fit(self, data, **kw):
        """Every amount within money_fits once rounded (read_money cannot: it does not know the currency)."""
        cur = data["currency"]
        q = quantum(cur)
        errors: dict = {k: [money_too_large(cur)] for k in ORDER_MONEY
                        if data.get(k) is not None and not money_fits(round_money(data[k], cur), q)}
        items = {i: {"cost": [money_too_large(cur)]} for i, item in enumerate(data.get("items") or ())
                 if item.get("cost") is not None and not money_fits(round_money(item["cost"], cur), q)}
        if items:
            errors["items"] = items
        if errors:
            raise ValidationError(errors)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _rules(self, data, original, **kw):
        # Checked even when other fields are wrong, so that every mistake of an order is named at once
        # (one round of fixes, not two); a contact field that is itself wrong has named its own error.
        if data.get("externalOrderId") is None and "externalOrderId" in data:
            raise ValidationError("must not be empty", "externalOrderId")
        wrong = isinstance(original, dict) and any(f in original and f not in data for f in CONTACT_FIELDS)
        if not wrong and not any(data.get(f) for f in CONTACT_FIELDS):
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


def parse_order_with_schema(data: Any, *, naive_dates_as_utc: bool = False) -> Order:
    """parse_order through the marshmallow schema alone (the reference the fast path is tested against)."""
    schema = _SCHEMAS.get(naive_dates_as_utc)
    if schema is None:
        schema = _SCHEMAS[naive_dates_as_utc] = OrderSchema(naive_dates_as_utc=naive_dates_as_utc)
    try:
        return schema.load(data)
    except ValidationError as e:
        raise InvalidOrder("; ".join(_flatten(e.messages)) or "invalid order", e.messages) from None


def parse_order(data: Any, *, naive_dates_as_utc: bool = False) -> Order:
    """Validate one wire order and return the domain order, or raise InvalidOrder.

    A valid order takes the fast path (the same readers, without marshmallow's machinery,
    which cost ~4x the rest of backend intake: see bench/ingest.py --profile); anything the
    fast path is not sure of goes through the schema, so errors always come from the schema.
    """
    order = _fast_order(data, naive_dates_as_utc)
    return order if order is not None else parse_order_with_schema(data, naive_dates_as_utc=naive_dates_as_utc)


# ---- the fast path: the schema's rules for valid input, None at the first doubt ------------

_OPT_TEXT = ("externalCustomerId", "firstName", "lastName", "restoreUrl", "statusDescription", "storeId",
             "source", "deliveryMethod", "paymentMethod", "deliveryAddress")
_ITEM_TEXT = ("name", "category", "url", "imageUrl", "description")
_OPT_MONEY = ORDER_MONEY[1:]
# The fast path builds Order and Item field by field (see _frozen): it must name every field.
assert {f.name for f in dataclass_fields(Order)} == {*_OPT_TEXT, *ORDER_MONEY, "externalOrderId", "status", "date",
                                                     "currency", "email", "phone", "additionalInfo", "items"}
assert {f.name for f in dataclass_fields(Item)} == {*_ITEM_TEXT, "externalItemId", "quantity", "cost"}


def _opt_read(data: dict, key: str, reader):
    v = data.get(key)
    return None if v is None else reader(v)


def _text(v) -> str | None:
    """read_text, with its commonest case (a string without NUL) inlined."""
    if type(v) is str and "\x00" not in v:
        return v.strip() or None
    return read_text(v)


def _texts(data: dict, keys: tuple[str, ...], out: dict) -> None:
    """Put the optional text fields `keys` of `data` into `out` (None when absent); _text inlined."""
    get = data.get
    for k in keys:
        v = get(k)
        if v is None:
            out[k] = None
        elif type(v) is str and "\x00" not in v:
            out[k] = v.strip() or None
        else:
            out[k] = read_text(v)


_MONEY_LIMIT = 10 ** MAX_MONEY_DIGITS


def _money_of(value) -> Decimal:
    """read_money, with its commonest cases (a non-negative int, a plain numeric string) inlined.

    Only values read_money would accept as they are return here; anything else (negative,
    large, not finite, not a number) goes through read_money, for its error or its value.
    """
    t = type(value)
    if t is Decimal:                    # read_money would rebuild it from its str: the same value
        if value.is_finite() and not value < 0 and value.adjusted() < MAX_MONEY_DIGITS:
            return value
    elif t is int:
        if 0 <= value < _MONEY_LIMIT:
            return Decimal(value)       # Decimal(5) == Decimal("5"), the same object read_money makes
    elif t is str:
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return read_money(value)
        if d.is_finite() and not d < 0 and d.adjusted() < MAX_MONEY_DIGITS:
            return d
    return read_money(value)


_new = object.__new__


def _frozen(cls, values: dict):
    """`cls(**values)` for a frozen dataclass, given every field.

    A frozen dataclass's __init__ sets each field through object.__setattr__, which made building
    Order and Item the largest part of the fast path; filling __dict__ at once gives an equal
    object (same fields, same eq/repr/hash) several times faster.
    """
    obj = _new(cls)
    obj.__dict__.update(values)
    return obj


_TOO_LARGE = object()


def _opt_amount(value, q: Decimal, top: int):
    """An optional amount for the fast path, rounded: None when absent or blank, _TOO_LARGE when beyond
    money_fits (`top`: the exponent a rounded amount stays below)."""
    if value is None or blank(value):
        return None
    d = _money_of(value).quantize(q, ROUND_HALF_UP)
    return _TOO_LARGE if d.adjusted() >= top else d


def _fast_item_values(data: Any, quantum: Decimal, top: int) -> dict | None:
    """The fields of the item `data` describes when it is valid and usual, else None. `top`: the exponent
    (Decimal.adjusted) a rounded amount stays below (money_fits, inlined)."""
    if type(data) is not dict:
        return None
    get = data.get
    item_id, qty, cost = get("externalItemId"), get("quantity"), get("cost")
    if item_id is None or qty is None:
        return None
    item_id = _text(item_id)
    if item_id is None:
        return None
    if (cost := _opt_amount(cost, quantum, top)) is _TOO_LARGE:
        return None
    quantity = _money_of(qty)
    if type(qty) is not int and not quantity_fits(quantity):    # an int _money_of took is whole and fits
        return None
    values = {"externalItemId": item_id, "quantity": quantity, "cost": cost}
    _texts(data, _ITEM_TEXT, values)
    return values


def _fast_values(data: Any, naive_dates_as_utc: bool) -> dict | None:
    """The fields of the order `data` describes when it is valid and usual (items as field dicts),
    else None: the schema then decides. The one place the fast checks are written."""
    if type(data) is not dict:
        return None
    get = data.get
    ext, total, status, date, cur = (get("externalOrderId"), get("totalCost"), get("status"), get("date"),
                                     get("currency"))
    if ext is None or total is None or status is None or date is None or cur is None:
        return None
    try:
        ext = _text(ext)
        cur = read_currency(cur)
        q = quantum(cur)
        top = MAX_MONEY_DIGITS + q.adjusted()      # money_fits(d, q) is d.adjusted() < top
        total = _money_of(total).quantize(q, ROUND_HALF_UP)
        if total.adjusted() >= top:
            return None
        kw = {"externalOrderId": ext, "totalCost": total,
              "status": read_status(status), "date": read_date(date, naive_dates_as_utc), "currency": cur}
        _texts(data, _OPT_TEXT, kw)
        kw["email"] = _opt_read(data, "email", read_email)
        kw["phone"] = _opt_read(data, "phone", read_phone)
        if ext is None or not (kw["externalCustomerId"] or kw["email"] or kw["phone"]):
            return None
        if len(ext) > MAX_KEY_CHARS or len(kw["externalCustomerId"] or "") > MAX_KEY_CHARS:
            return None
        for k in _OPT_MONEY:
            if (v := _opt_amount(get(k), q, top)) is _TOO_LARGE:
                return None
            kw[k] = v
        kw["additionalInfo"] = _opt_read(data, "additionalInfo", read_string_map) or {}
        raw_items = get("items")
        items = []
        if raw_items is not None:
            if type(raw_items) is not list:
                return None
            for raw in raw_items:
                item = _fast_item_values(raw, q, top)
                if item is None:
                    return None
                items.append(item)
        kw["items"] = items
        return kw
    except ValidationError:
        return None


def _fast_order(data: Any, naive_dates_as_utc: bool) -> Order | None:
    kw = _fast_values(data, naive_dates_as_utc)
    if kw is None:
        return None
    kw["items"] = tuple(_frozen(Item, i) for i in kw["items"])
    return _frozen(Order, kw)


# ---- strict output ---------------------------------------------------------------------------

def _item_wire(f: dict) -> dict:
    out: dict[str, Any] = {"externalItemId": f["externalItemId"], "quantity": to_json_number(f["quantity"])}
    for k in _ITEM_TEXT:
        v = f[k]
        if v is not None:
            out[k] = v
    if f["cost"] is not None:
        out["cost"] = to_json_number(f["cost"])
    return out


_ORDER_TEXT = ("externalCustomerId", "email", "phone", "firstName", "lastName", "restoreUrl",
               "statusDescription", "storeId", "source", "deliveryMethod", "paymentMethod", "deliveryAddress")


def _order_wire(f: dict, items: Iterable[dict]) -> dict:
    """The wire form of an order's fields (an Order's __dict__, or the fast path's values)."""
    out: dict[str, Any] = {
        "externalOrderId": f["externalOrderId"],
        "totalCost": to_json_number(f["totalCost"]),
        "status": f["status"],
        "date": format_date(f["date"]),
        "currency": f["currency"],
    }
    for k in _ORDER_TEXT:
        v = f[k]
        if v is not None:
            out[k] = v
    for k in _OPT_MONEY:
        v = f[k]
        if v is not None:
            out[k] = to_json_number(v)
    if f["additionalInfo"]:
        out["additionalInfo"] = dict(f["additionalInfo"])
    wire_items = [_item_wire(i) for i in items]
    if wire_items:
        out["items"] = wire_items
    return out


def item_to_wire(item: Item) -> dict:
    return _item_wire(item.__dict__)    # the dataclass's fields, read directly: this runs for every item


def order_to_wire(order: Order) -> dict:
    """The order as the add-orders API wants it: absent values left out, numbers as JSON numbers."""
    return _order_wire(order.__dict__, [i.__dict__ for i in order.items])


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)   # built once, not per call


def canonical_json(wire: dict) -> str:
    """A stable text of a wire order: the same order always gives the same text."""
    return _CANONICAL.encode(wire)


def content_hash(wire: dict) -> str:
    """The identity of one version of an order (sha256 of its canonical JSON)."""
    return hashlib.sha256(utf8(canonical_json(wire))).hexdigest()


def utf8(text: str) -> bytes:
    """Canonical text as bytes; InvalidOrder for an unpaired UTF-16 surrogate (JSON such as "\\ud83d" decodes to
    one): it is no character, no database or client can store it, and it must not fail a whole batch."""
    try:
        return text.encode()
    except UnicodeEncodeError as e:
        raise InvalidOrder(f"a text value holds {e.object[e.start:e.end]!a}, half of a UTF-16 surrogate pair and "
                           "no character: the sender's JSON is broken") from None


def request_body(orders: Iterable[dict]) -> dict:
    """The body of one add-orders request; refuses more than MAX_ORDERS_PER_REQUEST orders."""
    batch = list(orders)
    if len(batch) > MAX_ORDERS_PER_REQUEST:
        raise ValueError(f"{len(batch)} orders in one request; the limit is {MAX_ORDERS_PER_REQUEST}")
    return {"orders": batch}


# ---- validation straight to the wire: parse_order + order_to_wire without the Order between ----

def _fast_wire(data: Any, naive_dates_as_utc: bool) -> dict | None:
    """order_to_wire(_fast_order(data)) without the Order between, or None where that is None."""
    kw = _fast_values(data, naive_dates_as_utc)
    return None if kw is None else _order_wire(kw, kw["items"])


def validate_to_wire(data: Any, *, naive_dates_as_utc: bool = False) -> dict:
    """`order_to_wire(parse_order(data))`, or the InvalidOrder parse_order raises, without building the Order.

    For callers that only want the wire order (the CSV import): the same readers and rules as
    parse_order's fast path; anything that path is not sure of goes through parse_order itself.
    """
    wire = _fast_wire(data, naive_dates_as_utc)
    return wire if wire is not None else order_to_wire(parse_order(data, naive_dates_as_utc=naive_dates_as_utc))


def validate_to_canonical(data: Any, *, naive_dates_as_utc: bool = False) -> tuple[dict, str, str]:
    """validate_to_wire, with the wire order's canonical_json and content_hash: (wire, text, sha256 hex)."""
    wire = validate_to_wire(data, naive_dates_as_utc=naive_dates_as_utc)
    text = _CANONICAL.encode(wire)
    return wire, text, hashlib.sha256(utf8(text)).hexdigest()


# ---- canonical text from parts: for producers that already hold checked values -------------
# The CSV presets' fast paths write an order's canonical JSON from its parts instead of building a
# dict, validating it and encoding it. These pieces are the format's own (the same readers, the same
# encoder), so the text is the one validate_to_canonical gives; tests hold the two equal.

json_string = json.encoder.encode_basestring    # the canonical encoder's string writer (ensure_ascii=False)

def amount_json(value: Decimal, q: Decimal | None) -> str | None:
    """An amount's canonical JSON as validate_to_wire writes it, rounded to quantum `q` (money) or as
    it is (q None: quantities); None where the format would refuse it (not finite, negative, too large).

    Not cached here: its caller caches by cell text, in front of the parsing too. A cache by value
    behind that one only cost time (an order's total is nearly always new: 2 µs against 1 µs for
    the work itself) and memory (100,000 entries, ~20 MB in each import worker)."""
    if not value.is_finite() or value < 0 or value.adjusted() >= MAX_MONEY_DIGITS:
        return None
    if q is None:
        if not quantity_fits(value):
            return None
    else:
        value = value.quantize(q, ROUND_HALF_UP)
        if not money_fits(value, q):
            return None
    # what the canonical encoder writes for the int or float to_json_number gives (both finite here)
    return repr(to_json_number(value))
