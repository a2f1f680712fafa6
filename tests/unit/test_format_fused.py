"""validate_to_wire gives exactly order_to_wire(parse_order(x)), or the same InvalidOrder message."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.format import (InvalidOrder, _fast_wire, canonical_json, order_to_wire, parse_order,
                              validate_to_canonical, validate_to_wire)
from tests.conftest import FIXTURES
from tests.unit.test_format_fastpath import (currencies, dates, emails, items, junk, limits, money, orders, phones,
                                             statuses, texts)

# What the CSV presets hand over: Decimal amounts and datetime dates, not strings.
decimals = st.one_of(st.decimals(allow_nan=True, allow_infinity=True), st.decimals(0, 10**6, places=4),
                     st.just(Decimal("-0")), st.just(Decimal("1E+20")), st.just(Decimal("-1.5")),
                     limits.map(lambda v: Decimal(str(v))))
datetimes = st.one_of(st.datetimes(), st.datetimes(timezones=st.just(timezone.utc)))
typed_items = st.lists(st.fixed_dictionaries({"externalItemId": texts, "quantity": st.one_of(decimals, money)},
                                             optional={"cost": st.one_of(decimals, money), "name": texts}), max_size=3)
typed_orders = st.fixed_dictionaries(
    {"externalOrderId": texts, "totalCost": st.one_of(decimals, money), "status": statuses,
     "date": st.one_of(datetimes, dates), "currency": currencies},
    optional={"externalCustomerId": texts, "email": emails, "phone": phones, "shipping": st.one_of(decimals, money),
              "taxes": decimals, "items": st.one_of(typed_items, items), "deliveryAddress": texts})


# Mostly valid orders, so that the fused path itself (not only its fallback) is compared.
good_money = st.one_of(st.integers(0, 10**6), st.decimals(0, 10**6, places=3), st.decimals(0, 10**6, places=3).map(str),
                       st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 2)), limits)
good_text = st.one_of(st.text(min_size=1, max_size=12), st.integers(0, 10**9))
good_items = st.lists(st.fixed_dictionaries({"externalItemId": good_text, "quantity": good_money},
                                            optional={"cost": good_money, "name": st.one_of(texts, st.none()),
                                                      "url": texts, "description": st.just(" ")}), max_size=4)
valid_orders = st.fixed_dictionaries(
    {"externalOrderId": good_text, "totalCost": good_money,
     "status": st.sampled_from(["INITIALIZED", "delivered", " IN_PROGRESS ", "CANCELLED"]),
     "date": st.one_of(datetimes, st.just("2024-01-01T10:00:00+02:00"), st.just("2024-01-01T10:00:00Z")),
     "currency": st.sampled_from(["USD", "jpy", "KWD", " eur"]),
     "email": st.one_of(st.just("a@example.com"), st.just(" A.B@Example.COM "))},
    optional={"externalCustomerId": st.one_of(good_text, st.none(), st.just("")), "phone": phones,
              "firstName": texts, "lastName": st.none(), "shipping": st.one_of(good_money, st.none()),
              "discount": good_money, "taxes": st.one_of(good_money, decimals), "source": texts,
              "additionalInfo": st.one_of(st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3),
                                                                                          st.booleans(), st.integers()),
                                                          max_size=2), junk),
              "items": st.one_of(good_items, typed_items), "deliveryAddress": texts})


def outcome(fn, data, naive):
    try:
        return ("ok", fn(data, naive_dates_as_utc=naive))
    except InvalidOrder as e:
        return ("error", e.message)


def reference(data, naive_dates_as_utc):
    return order_to_wire(parse_order(data, naive_dates_as_utc=naive_dates_as_utc))


def same(data, naive):
    expected = outcome(reference, data, naive)
    got = outcome(validate_to_wire, data, naive)
    assert got == expected
    if expected[0] == "ok":    # equal dicts, and the same text once serialised (ints stay ints, floats floats)
        assert canonical_json(got[1]) == canonical_json(expected[1])
        _, text, digest = validate_to_canonical(data, naive_dates_as_utc=naive)
        assert text == canonical_json(expected[1]) and digest == hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(orders, st.booleans())
@example({"externalOrderId": "1", "totalCost": 1e30, "status": "DELIVERED", "date": "2024-01-01T00:00:00Z",
          "currency": "USD", "email": "a@b.co", "items": [{"externalItemId": "i", "quantity": "1e99"}]}, False)
@example({"externalOrderId": "1", "totalCost": 1e308, "status": "DELIVERED", "date": "0001-01-01T00:00:00+01:00",
          "currency": "USD", "email": "a@b.co"}, True)
def test_validate_to_wire_equals_parse_then_wire_on_any_input(data, naive):
    same(data, naive)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(typed_orders, st.booleans())
@example({"externalOrderId": "1", "totalCost": Decimal("-0"), "status": "paid", "date": datetime(2024, 1, 1),
          "currency": "EUR", "phone": "+49 30 1234567"}, True)
@example({"externalOrderId": "1", "totalCost": Decimal("12.345"), "status": "DELIVERED",
          "date": datetime(2024, 1, 1, tzinfo=timezone.utc), "currency": "KWD", "email": "a@b.co",
          "items": [{"externalItemId": "i", "quantity": Decimal("2"), "cost": Decimal("1E+15")}]}, False)
@example({"externalOrderId": "1", "totalCost": Decimal("9999999999999.99"), "status": "DELIVERED",
          "date": datetime(2024, 1, 1, tzinfo=timezone.utc), "currency": "USD", "email": "a@b.co",
          "items": [{"externalItemId": "i", "quantity": Decimal("2"), "cost": Decimal("9999999999999.995")}]}, False)
def test_validate_to_wire_takes_decimals_and_datetimes_as_parse_order_does(data, naive):
    same(data, naive)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_orders, st.booleans())
def test_validate_to_wire_equals_parse_then_wire_on_usual_orders(data, naive):
    same(data, naive)


def test_valid_orders_take_the_fused_path():
    seed = json.loads((FIXTURES / "yespo/add-orders.request.docs-example.json").read_text())["orders"][0]
    assert _fast_wire(seed, False) == reference(seed, False)
    typed = {**seed, "totalCost": Decimal("1000.004"), "date": datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
             "items": [{"externalItemId": 1, "quantity": Decimal("2"), "cost": Decimal("495.005")}]}
    assert _fast_wire(typed, False) == reference(typed, False)
