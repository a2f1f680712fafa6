"""The add-orders format's rules: phones, money, dates, currency, statuses, numeric strings, error messages."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.format import (InvalidOrder, content_hash, normalise_phone, order_to_wire, parse_date, parse_order,
                              phone_digits, request_body)
from connector.money import round_money, to_decimal, to_json_number

BASE = {"externalOrderId": "1", "totalCost": 10, "status": "INITIALIZED", "date": "2024-01-01T10:00:00+02:00",
        "currency": "USD", "email": "a@example.com"}


def order(**kw) -> dict:
    return {k: v for k, v in {**BASE, **kw}.items() if v is not None}


def error_of(data: dict, **kw) -> str:
    with pytest.raises(InvalidOrder) as e:
        parse_order(data, **kw)
    return e.value.message


@pytest.mark.parametrize("raw, digits", [
    ("+38 (050) 123-45-67", "380501234567"),
    ("380942583691", "380942583691"),
    (380942583691, "380942583691"),
    ("(050) 123-45-67", "0501234567"),       # no country code given: none is guessed
    ("12-34", None),                          # fewer than 5 digits: omitted
    ("", None),
    # one customer, however a form wrote the number: what is dialled from abroad after "+"
    ("+44 (0)20 7946 0958", "442079460958"),  # the trunk 0, dialled only at home
    ("+44 20 7946 0958", "442079460958"),
    ("0044 20 7946 0958", "442079460958"),    # 00: the international call prefix
    ("+49 (0)30 1234567", "49301234567"),
    ("+1 (555) 010-4477 ext. 89", "15550104477"),   # an extension is not part of the number
    ("+1 555 010 4477 x89", "15550104477"),
    ("555-010-4477 #89", "5550104477"),
    ("(0)30 1234567", "0301234567"),          # no country code: nothing to drop the trunk 0 for
    ("0044 (0)20 7946 0958", "442079460958"),
    ("0011 44 20 7946 0958", "442079460958"),  # Australia's international call prefix
    ("+39 (0)6 1234 5678", "390612345678"),    # Italian numbers keep their 0 from abroad
    ("0 0501234567", "00501234567"),          # a national number's own 0 is no call prefix
    ("#0501234567", "0501234567"),            # a word or mark before the number is no extension
    ("Phone # 5550104477", "5550104477"),
    ("fax 0501234567", "0501234567"),
    ("555-010-4477, ext. 12", "5550104477"),  # an extension after punctuation
    ("+1 555 010 4477; ext 12", "15550104477"),
    ("(555) 010-4477 - ext 12", "5550104477"),
    ("Tel: 0044 20 7946 0958", "442079460958"),   # a call prefix after a label or in brackets
    ("(0044) 20 7946 0958", "442079460958"),
    ("8 (495) 123-45-67", "84951234567"),     # Russia's trunk 8: as written, nothing guessed
])
def test_phones_are_digits_with_the_country_code_kept_never_guessed(raw, digits):
    assert normalise_phone(raw) == digits


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from("0123456789 +-()./x٣²\t"), max_size=16) | st.text(max_size=12))
def test_phone_digits_are_the_regex_ones_whatever_the_text(raw):
    """phone_digits's quick path (usual separators) gives what the regex gives (\\d: any decimal digit)."""
    assert phone_digits(raw) == re.sub(r"\D+", "", re.sub(r"(?i)(?<=\d)[\s,;.-]*(ext\.?|extension|x|#)\s*\d+\s*$", "", raw))


def test_a_short_phone_is_omitted_not_an_error_when_another_contact_id_exists():
    o = parse_order(order(phone="123"))
    assert o.phone is None and o.email == "a@example.com"


def test_a_short_phone_alone_is_no_contact_id():
    assert error_of(order(email=None, phone="12")).startswith("externalCustomerId/email/phone: at least one of")


@pytest.mark.parametrize("amount, currency, expected", [
    ("10.005", "USD", "10.01"),      # half up
    ("10.004", "EUR", "10.00"),
    ("1234.5", "JPY", "1235"),       # no minor unit
    ("0.0005", "KWD", "0.001"),      # three digits
])
def test_money_is_rounded_half_up_to_the_currencys_minor_unit(amount, currency, expected):
    assert round_money(Decimal(amount), currency) == Decimal(expected)


def test_jpy_order_reads_back_whole_yen():
    o = parse_order(order(currency="jpy", totalCost="1500.4", items=[{"externalItemId": "A", "quantity": 1, "cost": 99.6}]))
    wire = order_to_wire(o)
    assert wire["currency"] == "JPY" and wire["totalCost"] == 1500 and wire["items"][0]["cost"] == 100


def test_numeric_strings_are_numbers_and_numeric_ids_are_strings():
    o = parse_order(order(externalOrderId=100500, totalCost="19.99", shipping="5", items=[
        {"externalItemId": 200600, "quantity": "2", "cost": "7.50"}]))
    wire = order_to_wire(o)
    assert wire["externalOrderId"] == "100500" and wire["totalCost"] == 19.99 and wire["shipping"] == 5
    assert wire["items"] == [{"externalItemId": "200600", "quantity": 2, "cost": 7.5}]


@pytest.mark.parametrize("value, message", [
    ("abc", "totalCost: not a number: 'abc'"),
    (-1, "totalCost: must not be negative"),
    (True, "totalCost: not a number"),
    ("NaN", "totalCost: not a finite number"),
    (1e30, "totalCost: too large: at most 15 digits in all, the currency's decimal places included "
           "(the most a JSON number keeps exact)"),
    (1e13, "totalCost: too large for USD: at most 13 digits before the decimal point "
           "(15 digits in all with the 2 after it, the most a JSON number keeps exact)"),
])
def test_bad_money_names_the_field_and_the_problem(value, message):
    assert error_of(order(totalCost=value)) == message


def test_dates_keep_their_offset_and_z_means_utc():
    assert order_to_wire(parse_order(order(date="2017-03-08T09:30:00+02:00")))["date"] == "2017-03-08T09:30:00+02:00"
    assert parse_date("2024-05-01T10:11:12Z") == datetime(2024, 5, 1, 10, 11, 12, tzinfo=timezone.utc)
    assert parse_date("2024-05-01T10:11:12.000000+03:00").utcoffset() == timedelta(hours=3)


def test_a_date_without_offset_is_refused_unless_read_as_utc():
    assert error_of(order(date="2020-05-14T10:11:00")) == "date: needs a UTC offset, e.g. 2017-03-08T09:30:00+02:00"
    o = parse_order(order(date="2020-05-14T10:11:00"), naive_dates_as_utc=True)
    assert o.date == datetime(2020, 5, 14, 10, 11, tzinfo=timezone.utc)
    assert error_of(order(date="yesterday")) == "date: not an ISO 8601 date-time: 'yesterday'"


def test_currency_is_iso_4217_upper_case():
    assert parse_order(order(currency="uah")).currency == "UAH"
    assert error_of(order(currency="XYZ")) == "currency: expected an ISO 4217 code such as USD; got 'XYZ'"


def test_status_is_read_in_any_case_and_refused_outside_the_enum():
    assert parse_order(order(status="delivered")).status == "DELIVERED"
    assert error_of(order(status="SHIPPED")).startswith("status: must be one of INITIALIZED, IN_PROGRESS, DELIVERED")


def test_every_missing_required_field_is_named():
    # every mistake at once, the missing contact included (one round of fixes, not two)
    assert error_of({"externalOrderId": "x"}) == \
        "totalCost: is required; status: is required; date: is required; currency: is required; " \
        "externalCustomerId/email/phone: at least one of externalCustomerId, email, phone is required " \
        "(a phone needs 5 digits or more)"
    # a contact field that is itself wrong names its own error, and only that
    assert error_of(order(email="not-an-email", totalCost="ten")) == \
        "totalCost: not a number: 'ten'; email: not an email address: 'not-an-email'"
    assert error_of(order(externalOrderId="  ")) == "externalOrderId: must not be empty"
    assert error_of(order(items=[{"quantity": 1}])) == "items[0].externalItemId: is required"
    assert error_of(order(email="not-an-email")) == "email: not an email address: 'not-an-email'"
    assert error_of("nope") == "expected a JSON object"


def test_unknown_fields_are_ignored_and_additional_info_becomes_strings():
    o = parse_order(order(colour="red", additionalInfo={"orderNumber": 1001, "gift": True, "none": None}))
    assert order_to_wire(o)["additionalInfo"] == {"orderNumber": "1001", "gift": "true"}
    assert "colour" not in order_to_wire(o)


def test_content_hash_is_the_same_for_the_same_order_written_differently():
    a = order_to_wire(parse_order(order(totalCost="10.00", currency="usd")))
    b = order_to_wire(parse_order(order(totalCost=10)))
    assert content_hash(a) == content_hash(b)


def test_json_numbers_and_decimal_reading():
    assert to_json_number(Decimal("10.00")) == 10 and isinstance(to_json_number(Decimal("10.00")), int)
    assert to_json_number(Decimal("0.1")) == 0.1
    assert to_decimal(0.1) == Decimal("0.1")      # floats read by their repr, not their binary value


def test_a_request_holds_at_most_1000_orders():
    assert len(request_body([BASE] * 1000)["orders"]) == 1000
    with pytest.raises(ValueError, match="1001 orders in one request; the limit is 1000"):
        request_body([BASE] * 1001)


def test_a_date_that_does_not_exist_in_utc_is_refused():
    assert error_of(order(date="0001-01-01T00:00:00+02:00")).startswith("date: out of range once converted to UTC")


def test_text_with_a_nul_character_is_refused_since_no_database_stores_it():
    assert error_of(order(firstName="Ann\x00")) == "firstName: must not contain NUL characters"
    assert error_of(order(email="a\x00@example.com")) == "email: must not contain NUL characters"


def test_a_blank_optional_amount_is_absent_as_the_official_woocommerce_plugin_sends_it():
    """reference/yespo-api.md: the WooCommerce plugin writes "" for a shipping, discount or tax it does not
    have. A blank required amount (totalCost, an item's quantity) is still a wrong number."""
    o = parse_order(order(shipping="", discount=" ", taxes="", items=[{"externalItemId": "s", "quantity": 1, "cost": ""}]))
    assert (o.shipping, o.discount, o.taxes, o.items[0].cost) == (None, None, None, None)
    assert error_of(order(totalCost="")) == "totalCost: not a number: ''"
    assert error_of(order(items=[{"externalItemId": "s", "quantity": ""}])) == "items[0].quantity: not a number: ''"
