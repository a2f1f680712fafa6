"""Amounts and quantities stay exact on the wire: at most 15 digits in all, refused beyond, never rounded.

A JSON number is read as a double by most receivers (Python's json, JavaScript); a double keeps 15
significant digits exactly. 999999999999999.99 USD, allowed when the limit counted only the digits
before the decimal point, became 1e15 on the wire: a change of 0.01 gave the same content hash, and the
receiving API was told another amount than the shop's.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.format import (InvalidOrder, _fast_order, _fast_wire, amount_json, content_hash, order_to_wire,
                              parse_order, parse_order_with_schema, quantity_fits, validate_to_canonical)
from connector.money import quantum

BASE = {"externalOrderId": "1", "totalCost": 10, "status": "INITIALIZED", "date": "2024-01-01T10:00:00+02:00",
        "currency": "USD", "email": "a@example.com"}

# currency → (the largest amount it takes, the smallest it refuses): 15 digits with its decimal places
EDGES = {
    "JPY": ("999999999999999", "1000000000000000"),
    "USD": ("9999999999999.99", "10000000000000.00"),
    "KWD": ("999999999999.999", "1000000000000.000"),
    "CLF": ("99999999999.9999", "100000000000.0000"),
}


def order(**kw) -> dict:
    return {k: v for k, v in {**BASE, **kw}.items() if v is not None}


def error_of(data: dict) -> str:
    with pytest.raises(InvalidOrder) as e:
        parse_order(data)
    schema_error = pytest.raises(InvalidOrder)
    with schema_error as s:
        parse_order_with_schema(data)
    assert s.value.message == e.value.message
    return e.value.message


def round_trip(data: dict):
    """The order as the receiver reads its canonical JSON back (json.loads: floats), and that text."""
    wire, text, _ = validate_to_canonical(data)
    return parse_order(json.loads(text)), text


@pytest.mark.parametrize("currency", EDGES)
def test_the_largest_amount_round_trips_exactly_through_canonical_json(currency):
    largest = EDGES[currency][0]
    data = order(currency=currency, totalCost=largest, shipping=largest, discount=largest, taxes=largest,
                 items=[{"externalItemId": "A", "quantity": 1, "cost": largest}])
    back, text = round_trip(data)
    want = Decimal(largest)
    assert back.totalCost == back.shipping == back.discount == back.taxes == back.items[0].cost == want
    assert f'"totalCost":{largest}' in text
    assert back == parse_order(data)


@pytest.mark.parametrize("currency", EDGES)
def test_one_minor_unit_apart_at_the_limit_is_another_version(currency):
    largest = Decimal(EDGES[currency][0])
    below = largest - quantum(currency)
    hashes = {content_hash(order_to_wire(parse_order(order(currency=currency, totalCost=str(v))))) for v in (largest, below)}
    assert len(hashes) == 2


@pytest.mark.parametrize("currency", EDGES)
def test_one_digit_more_is_refused_naming_the_field_and_the_limit(currency):
    too_large = EDGES[currency][1]
    places = {"JPY": 0, "USD": 2, "KWD": 3, "CLF": 4}[currency]
    limit = f"too large for {currency}: at most {15 - places} digits before the decimal point"
    for field in ("totalCost", "shipping", "discount", "taxes"):
        message = error_of(order(currency=currency, **{field: too_large}))
        assert message.startswith(f"{field}: {limit}") and "15 digits in all" in message, message
    message = error_of(order(currency=currency, items=[{"externalItemId": "A", "quantity": 1},
                                                        {"externalItemId": "B", "quantity": 1, "cost": too_large}]))
    assert message.startswith(f"items[1].cost: {limit}"), message


def test_the_limit_applies_after_rounding_to_the_minor_unit():
    assert parse_order(order(totalCost="9999999999999.994")).totalCost == Decimal("9999999999999.99")
    assert error_of(order(totalCost="9999999999999.995")).startswith("totalCost: too large for USD")
    assert error_of(order(totalCost=9999999999999.998)).startswith("totalCost: too large for USD")   # a float, as JSON gives


def test_the_message_before_the_currency_is_known_still_names_the_limit():
    assert error_of(order(totalCost=1e30)) == ("totalCost: too large: at most 15 digits in all, the currency's "
                                               "decimal places included (the most a JSON number keeps exact)")


def test_the_old_defect_is_refused_not_rounded():
    """17 digits: as a float these two were one number, with one content hash."""
    for value in ("999999999999999.99", "999999999999999.98", "99999999999999.99"):
        assert error_of(order(totalCost=value)).startswith("totalCost: too large")


@pytest.mark.parametrize("quantity", ["999999999999999", "1.23456789012345", "0.000000000000001", "12345678901234.5",
                                      "2.50000000000000000000"])
def test_a_quantity_of_15_digits_round_trips_exactly(quantity):
    back, _ = round_trip(order(items=[{"externalItemId": "A", "quantity": quantity}]))
    assert back.items[0].quantity == Decimal(quantity)


@pytest.mark.parametrize("quantity", ["1000000000000000", "1.234567890123456", "0.0000000000000001", "1E-400",
                                      "12345678901234.56"])
def test_a_quantity_of_more_digits_is_refused_not_rounded(quantity):
    assert error_of(order(items=[{"externalItemId": "A", "quantity": quantity}])) == (
        "items[0].quantity: too many digits: at most 15 in all, before and after the decimal point "
        "(the most a JSON number keeps exact)")


@pytest.mark.parametrize("currency", EDGES)
def test_amount_json_takes_what_the_format_takes(currency):
    q = quantum(currency)
    largest, too_large = (Decimal(v) for v in EDGES[currency])
    assert amount_json(largest, q) == json.dumps(json.loads(str(largest)))
    assert amount_json(too_large, q) is None
    assert amount_json(largest + q / 2, q) is None          # rounds up past the limit
    assert amount_json(Decimal("999999999999999.99"), quantum("USD")) is None


def written_out(d: Decimal) -> int:
    """The digits of a quantity written out in full, trailing zeros after the point dropped (0.050 → 2)."""
    whole, _, fraction = format(d, "f").partition(".")
    return len(whole.lstrip("0")) + len(fraction.rstrip("0"))


@given(st.builds(lambda c, e: Decimal(c).scaleb(e), st.integers(0, 10**22), st.integers(-25, 10)))
@example(Decimal("1.0000000000000000000000000000001"))       # beyond Decimal's 28-digit context
@example(Decimal("0E-30"))
def test_quantity_fits_counts_the_digits_written_out(d):
    assert quantity_fits(d) == (written_out(d) <= 15)


def test_amount_json_takes_the_quantities_the_format_takes():
    assert amount_json(Decimal("1.23456789012345"), None) == "1.23456789012345"
    assert amount_json(Decimal("2.50000000000000000000"), None) == "2.5"
    assert amount_json(Decimal("1.234567890123456"), None) is None
    assert amount_json(Decimal("1E-400"), None) is None


@pytest.mark.parametrize("currency", EDGES)
def test_fast_paths_agree_with_the_schema_at_the_limit(currency):
    for value in (*EDGES[currency], str(Decimal(EDGES[currency][0]) + quantum(currency) / 2), Decimal(EDGES[currency][0])):
        for data in (order(currency=currency, totalCost=value),
                     order(currency=currency, shipping=value),
                     order(currency=currency, items=[{"externalItemId": "A", "quantity": 1, "cost": value}])):
            try:
                want = parse_order_with_schema(data)
            except InvalidOrder:
                assert _fast_order(data, False) is None and _fast_wire(data, False) is None
            else:
                assert _fast_order(data, False) == want and _fast_wire(data, False) == order_to_wire(want)
