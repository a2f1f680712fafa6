"""Pure pieces of the reports: RFM bin edges, segment filters, the report cache, the chart and grid layout."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backend.reports import RECENCY_BINS, Binner, ReportCache, money
from backend.segments import InvalidSegment, SegmentFilter
from backend.ui.present import cell_class, daily, nice_top, revenue_chart, rfm_grid

AT = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("sample", ["2026-01-01 00:00:00.000000", AT], ids=["sqlite-text", "datetime"])
@pytest.mark.parametrize("age, expected", [
    (timedelta(0), 0), (timedelta(days=13, hours=23), 0), (timedelta(days=14), 1),   # a bin holds its lower edge
    (timedelta(days=30), 2), (timedelta(days=89), 2), (timedelta(days=90), 3), (timedelta(days=180), 4),
    (timedelta(days=359), 4), (timedelta(days=360), 5), (timedelta(days=3000), 5),
])
def test_recency_bins(sample, age, expected):
    binner = Binner(AT, sample)
    last = AT - age
    raw = last.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(sample, str) else last
    assert binner.cell(raw, 1)[0] == expected, RECENCY_BINS[expected][0]


@pytest.mark.parametrize("n, expected", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (50, 3)])
def test_frequency_bins(n, expected):
    assert Binner(AT, AT).cell(AT, n)[1] == expected


def test_money_rounds_to_the_currency():
    assert money(0.1 + 0.2, "USD") == 0.3
    assert money(1000.5, "JPY") == 1001.0
    assert money(1.2345, "KWD") == 1.235


def test_segment_filter_round_trip():
    seg = SegmentFilter.from_params({"avgCheckMin": "10", "orderCountMax": "3", "lastOrderAfter": "2026-01-31",
                                     "currency": "eur", "avgCheckMax": ""})
    assert seg.to_params() == {"avgCheckMin": 10.0, "orderCountMax": 3,
                               "lastOrderAfter": "2026-01-31T00:00:00+00:00", "currency": "EUR"}
    assert SegmentFilter.from_params(seg.to_params(), strict=True) == seg
    assert SegmentFilter.from_params({}).is_empty()


@pytest.mark.parametrize("params, message", [
    ({"avgCheckMin": "-1"}, "avgCheckMin: expected a non-negative number"),
    ({"orderCountMin": "nan"}, "orderCountMin: expected a non-negative number"),
    ({"currency": "EURO"}, "currency: 'EURO' is not an ISO 4217"),
    ({"lastOrderAfter": "2026-02-01", "lastOrderBefore": "2026-01-01"}, "lastOrder: the lower bound"),
])
def test_segment_filter_errors_name_the_parameter(params, message):
    with pytest.raises(InvalidSegment, match=message):
        SegmentFilter.from_params(params)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_report_cache_reuses_while_the_data_is_unchanged():
    clock, calls = Clock(), []
    cache = ReportCache(ttl=60, size=2, clock=clock)
    compute = lambda: calls.append(1) or len(calls)      # noqa: E731
    assert cache.get("rfm", (1, 2, 3), compute) == 1
    assert cache.get("rfm", (1, 2, 3), compute) == 1        # same data: reused
    assert cache.get("rfm", (2, 2, 3), compute) == 2        # a new order event: recomputed
    clock.now = 61
    assert cache.get("rfm", (2, 2, 3), compute) == 3        # too old: recomputed
    cache.get("a", 1, compute), cache.get("b", 1, compute)
    assert "rfm" not in cache.entries and len(cache.entries) == 2   # bounded


def test_cell_colours():
    assert cell_class(0, 3, 0) == "rfm-grey"
    assert cell_class(0, 0, 5) == "rfm-green-1" and cell_class(1, 3, 5) == "rfm-green-4"
    assert cell_class(3, 3, 5) == "rfm-red-1" and cell_class(5, 0, 5) == "rfm-red-3"


def test_grid_puts_lost_bottom_left_and_loyal_top_right():
    cells = [{"recency": r, "frequency": f, "contacts": 0, "revenue": {}, "averageCheck": {}}
             for f in ("1", "2", "3-4", "5+") for r, _ in RECENCY_BINS]
    grid = rfm_grid({"cells": cells})
    assert (grid[0][-1]["recency"], grid[0][-1]["frequency"]) == ("<2w", "5+")
    assert (grid[-1][0]["recency"], grid[-1][0]["frequency"]) == (">12m", "1")


def test_chart_fills_missing_days_and_scales_bars():
    series = [{"date": "2026-05-01", "purchases": 1, "revenue": 40.0},
              {"date": "2026-05-04", "purchases": 2, "revenue": 100.0}]
    days = daily(series)
    assert [d["date"] for d in days] == ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]
    chart = revenue_chart(series)
    assert chart.top == 100 and len(chart.bars) == 4
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.label == "2026-05-04" and tallest.y == 10          # up to the top padding
    assert revenue_chart([]) is None
    assert [nice_top(v) for v in (0, 7, 10, 11, 420)] == [1.0, 10, 10, 20, 500]
