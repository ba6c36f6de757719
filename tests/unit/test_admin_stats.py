"""The dashboard's figures from known purchases: UTC days, month edges, currencies, the chart."""

from __future__ import annotations

from datetime import date

from api.admin.chart import HEIGHT, revenue_chart
from api.pages.context import money
from services.operations.stats import summarise
from services.payments.model import Purchase, PurchaseState


def paid(n: int, created_at: str, amount: int = 999, currency: str = "usd") -> Purchase:
    return Purchase(
        id=f"p{n}",
        buyer_id="u",
        user_id="u",
        pack_id="popular",
        tokens=110,
        amount=amount,
        currency=currency,
        state=PurchaseState.PAID,
        created_at=created_at,
        updated_at=created_at,
    )


def test_the_month_starts_on_the_first_and_the_chart_reaches_back_30_days() -> None:
    today = date(2026, 3, 5)
    report = summarise(
        [
            paid(1, "2026-02-03T23:59:59.999999Z"),  # 30 days back: outside the chart
            paid(2, "2026-02-04T00:00:00.000000Z"),  # the chart's first day
            paid(3, "2026-02-28T12:00:00.000000Z", amount=499),  # last month
            paid(4, "2026-03-01T00:00:00.000000Z", amount=1999),  # this month
            paid(5, "2026-03-05T08:00:00.000000Z"),
            paid(6, "2026-03-05T09:00:00.000000Z", amount=500, currency="eur"),
        ],
        today,
        30,
    )
    assert (report.today.count, report.today.revenue) == (2, {"usd": 999, "eur": 500})
    assert (report.month.count, report.month.revenue) == (3, {"usd": 2998, "eur": 500})
    assert [d.day for d in report.days][:1] == [date(2026, 2, 4)]
    assert report.days[-1].day == today and len(report.days) == 30
    per_day = {d.day: d.sales.count for d in report.days if d.sales.count}
    assert per_day == {
        date(2026, 2, 4): 1,
        date(2026, 2, 28): 1,
        date(2026, 3, 1): 1,
        date(2026, 3, 5): 2,
    }
    assert report.currencies == ["eur", "usd"]


def test_bars_scale_to_the_largest_day_and_small_days_stay_visible() -> None:
    report = summarise(
        [
            paid(1, "2026-03-04T10:00:00.000000Z", amount=100_000),
            paid(2, "2026-03-05T10:00:00.000000Z", amount=1),
        ],
        date(2026, 3, 5),
        3,
    )
    chart = revenue_chart(report.days, "usd", money)
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0 and chart.bars[0].empty
    assert heights[1] == chart.baseline - 16  # the whole plot, below the scale label
    assert heights[2] == 1 and not chart.bars[2].empty
    assert all(bar.y + bar.height == chart.baseline <= HEIGHT for bar in chart.bars)
    assert chart.bars[2].title == "2026-03-05: 1 paid purchase, $0.01"
    assert chart.top_label == "$1000.00"
    assert revenue_chart([], "usd", money).bars == []
