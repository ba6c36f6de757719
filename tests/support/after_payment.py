"""Stripe-shaped refund and dispute events by id, for the after-payment lifecycles."""

from __future__ import annotations

from typing import Any

from tests.support.purchases import event
from tests.support.stripe_fixtures import fixture


def refund_event(
    kind: str, payment_intent: str, refund_id: str, amount: int, status: str
) -> dict[str, Any]:
    """``refund.created`` / ``updated`` / ``failed`` or ``charge.refund.updated``."""
    refund = fixture(
        "refund",
        id=refund_id,
        payment_intent=payment_intent,
        charge="ch_" + payment_intent[3:],
        amount=amount,
        currency="usd",
        status=status,
        failure_reason="expired_or_canceled_card" if status == "failed" else None,
    )
    return event(kind, refund)


def dispute_by_id(
    kind: str, payment_intent: str, dispute_id: str, amount: int, status: str
) -> dict[str, Any]:
    """Any ``charge.dispute.*`` event for one of possibly several disputes of a charge."""
    dispute = fixture(
        "dispute",
        id=dispute_id,
        payment_intent=payment_intent,
        charge="ch_" + payment_intent[3:],
        amount=amount,
        currency="usd",
        status=status,
    )
    return event(kind, dispute)
