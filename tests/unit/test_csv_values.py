"""Cell readers and the streaming reader of the CSV adapter: pure, no database."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from adapters.csv.importer import BlankRows, OrderRows
from adapters.csv.presets.base import allocate_discount
from adapters.csv.reader import read_rows
from adapters.csv.values import (CellError, DateReader, join_address, money, not_rounded, offset_date, quantity,
                                 split_name)


@pytest.mark.parametrize("text, kw, want", [
    ("1500.00", {}, Decimal("1500.00")),
    ("163056", {}, Decimal("163056")),
    (" 4.95 ", {}, Decimal("4.95")),
    ("1.234,50", {"decimal_sep": ",", "thousands_sep": "."}, Decimal("1234.50")),
    ("1 234,50", {"decimal_sep": ",", "thousands_sep": " "}, Decimal("1234.50")),
    ("12,5", {"decimal_sep": ","}, Decimal("12.5")),
])
def test_money_reads(text, kw, want):
    assert money(text, "Total", **kw) == want


@pytest.mark.parametrize("text, kw, words", [
    ("", {}, "is empty"),
    ("abc", {}, "not a number: 'abc'"),
    ("1,500.00", {}, "not a number"),
    ("-5", {}, "must not be negative"),
    ("NaN", {}, "not a finite number"),
    ("5.00", {"decimal_sep": ",", "thousands_sep": "."}, "thousands separator"),     # would read as 500
    ("5.5", {"decimal_sep": ","}, "decimal separator ','"),
])
def test_money_refuses_with_the_reason(text, kw, words):
    with pytest.raises(CellError) as e:
        money(text, "Total", **kw)
    assert e.value.column == "Total" and words in e.value.reason


def test_quantity_must_be_positive():
    with pytest.raises(CellError, match="more than 0"):
        quantity("0", "Lineitem quantity")
    with pytest.raises(CellError, match="is empty"):
        quantity("", "Lineitem quantity")


def test_shopify_dates_keep_their_offset():
    slow = DateReader("%Y-%m-%d %H:%M:%S %z")
    dt = offset_date("2025-05-11 09:55:16 -0400", "Created at", slow)
    assert dt.isoformat() == "2025-05-11T09:55:16-04:00"
    assert offset_date("2026-04-05 21:06:21 +0530", "x", slow).utcoffset() == timedelta(hours=5, minutes=30)
    with pytest.raises(CellError, match="not a date"):
        offset_date("2025-13-11 09:55:16 -0400", "Created at", slow)
    with pytest.raises(CellError, match="not a date"):
        offset_date("11/05/2025", "Created at", slow)


def test_naive_dates_take_the_zone_or_say_they_guessed():
    berlin = DateReader(None, ZoneInfo("Europe/Berlin"))
    assert berlin("2024-07-01 12:00:00", "date").isoformat() == "2024-07-01T12:00:00+02:00"
    assert not berlin.guessed
    utc = DateReader()
    assert utc("2024-07-01 12:00:00", "date").tzinfo == timezone.utc and utc.guessed
    assert utc("2024-07-01T12:00:00+03:00", "date").utcoffset() == timedelta(hours=3) and not utc.guessed


def test_names_addresses_and_discount_spread():
    assert split_name("RedactedName4 -") == ("RedactedName4", None)
    assert split_name("Jane Q Doe") == ("Jane", "Q Doe")
    assert join_address(["1 Rue", "", "Paris", "'75008", "-", "FR"]) == "1 Rue, Paris, 75008, FR"
    assert allocate_discount([Decimal(600), Decimal(1400)], Decimal(400)) == [Decimal(480), Decimal(1120)]
    assert allocate_discount([Decimal(10)], Decimal(0)) == [Decimal(10)]


def test_rows_carry_the_physical_line_they_start_on():
    text = 'a,b\r\n1,"two\nlines"\n\n3,x\r4,"y\r\nz"\n5,w'
    rows = list(read_rows(csv.reader(io.StringIO(text, newline="")), "t.csv"))
    assert [(r.line, r.cells[0]) for r in rows] == [(1, "a"), (2, "1"), (5, "3"), (6, "4"), (8, "5")]
    assert rows[1].cells[1] == "two\nlines"
    # the importer's own loop numbers them alike, on from where the reader is (here: after the header)
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    orders = list(OrderRows(reader, lambda cells: cells[0], 2, BlankRows(), "t.csv"))
    assert [(row.line, row.cells[0]) for _, group in orders for row in group] == [(2, "1"), (5, "3"), (6, "4"), (8, "5")]


@pytest.mark.parametrize("text", ["1\u00a0234,50", "1\u202f234,50", "1\u2009234,50"])
def test_a_space_as_thousands_separator_also_reads_the_spaces_spreadsheets_write(text):
    """French (and other) locales group digits with a no-break or narrow no-break space, which is what
    Excel and most ERPs write; `thousands_separator = " "` is what a user can type in the mapping."""
    assert money(text, "Total", decimal_sep=",", thousands_sep=" ") == Decimal("1234.50")


@pytest.mark.parametrize("text", ["1E+3", "2E+4", "7.5E+2", "1E+05", "2E4", "P-1E+9", "ABC"])
def test_codes_that_no_spreadsheet_rounded_are_left_alone(text):
    """A spreadsheet writes a number in E notation only when its digits do not fit (it keeps 6 significant
    digits: 1.67185E+13); a number under a million is written whole. `1E+3` is a product code, not a rounding."""
    assert not_rounded(text, "sku", "item id") == text


@pytest.mark.parametrize("text", ["1.67185E+13", "3.80501E+11", "4,00638E+12", "1E+14", "1.23457E+06", " 8.8017E+12 ",
                                  "1.67185e+13", "1.23456789012346E+015"])
def test_numbers_a_spreadsheet_rounded_are_refused(text):
    with pytest.raises(CellError, match="a spreadsheet turned the item id into a rounded number"):
        not_rounded(text, "sku", "item id")
