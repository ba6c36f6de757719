"""Purchase limits: pure rules, run by the stores inside their write transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from services.errors import PurchaseLimitReached
from services.ledger.model import parse_time
from services.payments.model import Purchase, PurchaseLimits, PurchaseState

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def counts_toward_limit(purchase: Purchase, limits: PurchaseLimits, now: datetime) -> bool:
    """Paid purchases, payments on their way, and checkouts that can still be paid.

    A checkout session expires at Stripe after ``open_session_s``; a payment intent
    never does, so a pending one counts until it is canceled (after a few declines,
    or by ``cancel-stale-intents`` once it is as old as a session can be).
    """
    if purchase.state in (PurchaseState.FAILED, PurchaseState.EXPIRED):
        return False
    if purchase.state is PurchaseState.PENDING and purchase.source != "payment_intent":
        started = parse_time(purchase.created_at)
        return now - started < timedelta(seconds=limits.open_session_s)
    return True


def check_limits(recent: Iterable[Purchase], limits: PurchaseLimits, now: datetime) -> None:
    """Raise PurchaseLimitReached, with the seconds until a slot frees, if no slot is free."""
    started = sorted(
        parse_time(p.created_at) for p in recent if counts_toward_limit(p, limits, now)
    )
    for window, allowed, label in ((HOUR, limits.per_hour, "hour"), (DAY, limits.per_day, "day")):
        inside = [moment for moment in started if now - moment < window]
        if len(inside) >= allowed:
            # The slot frees when the oldest purchase counted leaves the window.
            wait = inside[-allowed] + window - now
            raise PurchaseLimitReached(
                f"limit of {allowed} purchases per {label} reached; try again later",
                retry_after_s=max(1, int(wait.total_seconds()) + 1),
            )
