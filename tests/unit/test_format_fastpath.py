"""parse_order's fast path gives exactly what the marshmallow schema gives: the same order or the same error."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.format import InvalidOrder, _fast_order, parse_order, parse_order_with_schema
from tests.conftest import FIXTURES

junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=8), st.just(""), st.just("  "), st.lists(st.integers(), max_size=1),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
# 15 digits in all with the currency's decimal places: JPY takes the first, USD/EUR the 13 digits ones, KWD 12
limits = st.sampled_from([999999999999999, 10**15, "999999999999999.5", "9999999999999.99", "9999999999999.995",
                          "10000000000000.00", 9999999999999.99, 99999999999999.99, "999999999999.999",
                          "999999999999.9995", "999999999999999.99"])
money = st.one_of(st.integers(0, 10**6), st.decimals(0, 10**6, places=3).map(str),
                  st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 2)), st.just("-1"), st.just("x"), limits, junk)
texts = st.one_of(st.text(max_size=12), st.just("a\x00b"), st.integers(0, 10**9), junk)
dates = st.one_of(st.just("2024-01-01T10:00:00+02:00"), st.just("2024-01-01T10:00:00"), st.just("2024-01-01T10:00:00Z"),
                  st.datetimes().map(lambda d: d.isoformat()), junk)
statuses = st.one_of(st.sampled_from(["INITIALIZED", "delivered", " IN_PROGRESS ", "SHIPPED"]), junk)
currencies = st.one_of(st.sampled_from(["USD", "jpy", "KWD", " eur", "XYZ"]), junk)
emails = st.one_of(st.just("a@example.com"), st.just("A.B@Example.COM "), st.just("nope"), texts)
phones = st.one_of(st.just("+38 (050) 123-45-67"), st.just("12"), st.integers(0, 10**12), texts)
# quantities are not rounded: 15 digits in all with their own decimal places
quantities = st.one_of(money, st.sampled_from(["1.23456789012345", "1.234567890123456", "0.000000000000001", "1E-400",
                                               "2.50000000000000000000", 1e-16, "12345678901234.5"]))
items = st.lists(st.one_of(junk, st.fixed_dictionaries({"externalItemId": texts, "quantity": quantities},
                                                       optional={"cost": money, "name": texts, "url": texts})), max_size=3)
orders = st.one_of(junk, st.fixed_dictionaries(
    {"externalOrderId": texts, "totalCost": money, "status": statuses, "date": dates, "currency": currencies},
    optional={"externalCustomerId": texts, "email": emails, "phone": phones, "firstName": texts, "shipping": money,
              "discount": money, "taxes": money, "additionalInfo": st.one_of(junk, st.dictionaries(st.text(max_size=3), junk)),
              "items": st.one_of(items, junk), "source": texts}))


def outcome(fn, data, naive):
    try:
        return ("ok", fn(data, naive_dates_as_utc=naive))
    except InvalidOrder as e:
        return ("error", e.message)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(orders, st.booleans())
@example({"externalOrderId": "1", "totalCost": 1e30, "status": "DELIVERED", "date": "2024-01-01T00:00:00Z",
          "currency": "USD", "email": "a@b.co", "items": [{"externalItemId": "i", "quantity": "1e99"}]}, False)
@example({"externalOrderId": "1", "totalCost": 1e308, "status": "DELIVERED", "date": "0001-01-01T00:00:00+01:00",
          "currency": "USD", "email": "a@b.co"}, True)
@example({"externalOrderId": "1", "totalCost": "9999999999999.995", "status": "DELIVERED", "date": "2024-01-01T00:00:00Z",
          "currency": "USD", "email": "a@b.co", "items": [{"externalItemId": "i", "quantity": 1, "cost": "1E+13"}]}, False)
@example({"externalOrderId": "1", "totalCost": 999999999999999, "status": "DELIVERED", "date": "2024-01-01T00:00:00Z",
          "currency": "JPY", "email": "a@b.co", "shipping": "999999999999999.5"}, False)
def test_parse_order_equals_the_schema_on_any_input(data, naive):
    assert outcome(parse_order, data, naive) == outcome(parse_order_with_schema, data, naive)


def test_valid_orders_take_the_fast_path():
    seed = json.loads((FIXTURES / "yespo/add-orders.request.docs-example.json").read_text())["orders"][0]
    fast = _fast_order(seed, False)
    assert fast is not None and fast == parse_order_with_schema(seed)
    guest = {**seed, "externalCustomerId": None, "email": "", "phone": "+38 (050) 123-45-67", "totalCost": "1000.00",
             "items": [{"externalItemId": 1, "quantity": "2", "cost": "495.004"}], "additionalInfo": {"n": 1}}
    assert _fast_order(guest, True) == parse_order_with_schema(guest, naive_dates_as_utc=True)
