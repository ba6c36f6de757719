"""The dashboard's revenue-per-day chart as plain geometry for an inline SVG.

Server-rendered, so it needs no script (the CSP allows none inline) and no
chart library; every bar carries a <title> tooltip, and the page shows the
same figures as a table for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.operations.stats import DaySales

WIDTH, HEIGHT = 600, 200
TOP, BOTTOM = 16, 24  # room for the scale label and the day labels
GAP = 2

Money = Callable[[int, str], str]


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    title: str
    label: str  # the day of the month, under some bars
    empty: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: int
    bars: list[Bar]
    currency: str
    top_label: str  # the largest day's revenue, at the top of the scale


def _title(day: DaySales, currency: str, money: Money) -> str:
    count = day.sales.count
    amount = money(day.sales.revenue.get(currency, 0), currency)
    plural = "" if count == 1 else "s"
    return f"{day.day.isoformat()}: {count} paid purchase{plural}, {amount}"


def revenue_chart(days: list[DaySales], currency: str, money: Money) -> Chart:
    """One bar per day, heights in proportion to that day's revenue in ``currency``."""
    plot = HEIGHT - TOP - BOTTOM
    baseline = HEIGHT - BOTTOM
    step = WIDTH // max(len(days), 1)
    largest = max((d.sales.revenue.get(currency, 0) for d in days), default=0)
    bars = []
    for n, day in enumerate(days):
        value = day.sales.revenue.get(currency, 0)
        # Integer scaling; a day with any revenue stays visible.
        height = max(1, value * plot // largest) if value and largest else 0
        label = str(day.day.day) if n % 5 == 0 or n == len(days) - 1 else ""
        bars.append(
            Bar(
                x=n * step + GAP // 2,
                y=baseline - height,
                width=step - GAP,
                height=height,
                title=_title(day, currency, money),
                label=label,
                empty=value == 0,
            )
        )
    return Chart(WIDTH, HEIGHT, baseline, bars, currency, money(largest, currency))
