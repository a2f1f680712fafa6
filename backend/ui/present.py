"""Presentation helpers: the RFM grid's layout and colours, and the revenue chart's geometry (SVG)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from backend.reports import FREQUENCY_BINS, RECENCY_BINS

CHART_DAYS = 90           # the revenue chart's span, and the reports page's default period

# Recency bins at or above this index are "at risk" (red); below, "loyal" (green).
AT_RISK_FROM = 3          # 3 months and more since the last delivered order


def cell_class(r: int, f: int, contacts: int) -> str:
    """grey: no sales; green: loyal (stronger with more orders); red: at risk (stronger when more passive)."""
    if not contacts:
        return "rfm-grey"
    if r < AT_RISK_FROM:
        return f"rfm-green-{min(f + 1, 4)}"
    return f"rfm-red-{r - AT_RISK_FROM + 1}"


def rfm_grid(report: dict) -> list[list[dict]]:
    """Rows top to bottom (most orders first), columns left to right (longest ago first), so the
    lost contacts sit bottom left and the loyal ones top right, as in Yespo's graph."""
    by_key = {(c["recency"], c["frequency"]): c for c in report["cells"]}
    grid = []
    for f in reversed(range(len(FREQUENCY_BINS))):
        row = []
        for r in reversed(range(len(RECENCY_BINS))):
            cell = by_key[(RECENCY_BINS[r][0], FREQUENCY_BINS[f][0])]
            row.append({**cell, "r": r, "f": f, "css": cell_class(r, f, cell["contacts"])})
        grid.append(row)
    return grid


def recency_labels_left_to_right() -> list[str]:
    return [label for label, _ in reversed(RECENCY_BINS)]


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    purchases: int


@dataclass
class Chart:
    width: int
    height: int
    bars: list
    y_ticks: list            # (y, label)
    x_labels: list           # (x, label)
    top: float


def nice_top(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def daily(series: list[dict], max_days: int = CHART_DAYS) -> list[dict]:
    """The series with every day present (zeros filled), at most the last `max_days` days."""
    if not series:
        return []
    by_day = {s["date"]: s for s in series}
    last = date.fromisoformat(series[-1]["date"])
    first = max(date.fromisoformat(series[0]["date"]), last - timedelta(days=max_days - 1))
    out, day = [], first
    while day <= last:
        key = day.isoformat()
        out.append(by_day.get(key, {"date": key, "purchases": 0, "revenue": 0.0}))
        day += timedelta(days=1)
    return out


def revenue_chart(series: list[dict], width: int = 720, height: int = 220) -> Chart | None:
    """Bars of credited revenue per day (inline SVG: no scripts, no network)."""
    days = daily(series)
    if not days:
        return None
    left, bottom, top_pad = 60, 30, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = nice_top(max(d["revenue"] for d in days))
    step = plot_w / len(days)
    bars = []
    for i, d in enumerate(days):
        h = plot_h * d["revenue"] / top
        bars.append(Bar(round(left + i * step + step * 0.1, 1), round(top_pad + plot_h - h, 1),
                        round(max(step * 0.8, 1), 1), round(h, 1), d["date"], d["revenue"], d["purchases"]))
    ticks = [(round(top_pad + plot_h - plot_h * k / 4, 1), f"{top * k / 4:g}") for k in range(5)]
    every = max(1, len(days) // 6)
    xlabels = [(round(left + i * step + step / 2, 1), d["date"]) for i, d in enumerate(days) if i % every == 0]
    return Chart(width, height, bars, ticks, xlabels, top)
