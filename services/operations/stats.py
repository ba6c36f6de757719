"""Paid purchases and revenue: today, this month, and per day for a chart.

Days are UTC days, like every timestamp the store keeps. Revenue is the sum of
the purchases' amounts in integer minor units, per currency, counting the
purchases that are paid now (refunds show on each purchase, not here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from services.payments.model import Purchase, PurchaseState
from services.store.port import OperationsStore

CHART_DAYS = 30


@dataclass
class Sales:
    count: int = 0
    revenue: dict[str, int] = field(default_factory=dict)  # currency -> minor units

    def add(self, purchase: Purchase) -> None:
        self.count += 1
        self.revenue[purchase.currency] = self.revenue.get(purchase.currency, 0) + purchase.amount


@dataclass(frozen=True)
class DaySales:
    day: date
    sales: Sales


@dataclass(frozen=True)
class SalesReport:
    today: Sales
    month: Sales
    days: list[DaySales]  # oldest first, every day of the window, empty ones too

    @property
    def currencies(self) -> list[str]:
        found = {c for d in self.days for c in d.sales.revenue} | set(self.month.revenue)
        return sorted(found)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def summarise(purchases: Iterable[Purchase], today: date, days: int) -> SalesReport:
    """Bucket paid purchases by UTC day of creation (their ``created_at`` text's date)."""
    first = today - timedelta(days=days - 1)
    per_day = {first + timedelta(days=n): Sales() for n in range(days)}
    today_sales, month_sales = Sales(), Sales()
    for purchase in purchases:
        created = date.fromisoformat(purchase.created_at[:10])
        if created in per_day:
            per_day[created].add(purchase)
        if created == today:
            today_sales.add(purchase)
        if (created.year, created.month) == (today.year, today.month) and created <= today:
            month_sales.add(purchase)
    return SalesReport(today_sales, month_sales, [DaySales(d, s) for d, s in per_day.items()])


def sales_report(store: OperationsStore, now: datetime, days: int = CHART_DAYS) -> SalesReport:
    """One query covers the chart's window and the whole month so far."""
    today = now.astimezone(UTC).date()
    start = min(today.replace(day=1), today - timedelta(days=days - 1))
    end = day_start(today + timedelta(days=1))
    paid = store.purchases_created(day_start(start), end, PurchaseState.PAID)
    return summarise(paid, today, days)
