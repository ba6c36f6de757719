"""Stripe-shaped refund and dispute events by id, for the after-payment lifecycles."""

from __future__ import annotations

from typing import Any

from tests.support.purchases import event
from tests.support.stripe_fixtures import fixture


def _charge_object(
    name: str, payment_intent: str, object_id: str, amount: int, status: str, **extra: Any
) -> dict[str, Any]:
    """A refund or dispute of the charge behind ``payment_intent``, from Stripe's fixture."""
    charge = "ch_" + payment_intent[3:]
    return fixture(
        name,
        id=object_id,
        payment_intent=payment_intent,
        charge=charge,
        amount=amount,
        currency="usd",
        status=status,
        **extra,
    )


def refund_event(
    kind: str, payment_intent: str, refund_id: str, amount: int, status: str
) -> dict[str, Any]:
    """``refund.created`` / ``updated`` / ``failed`` or ``charge.refund.updated``."""
    reason = "expired_or_canceled_card" if status == "failed" else None
    refund = _charge_object(
        "refund", payment_intent, refund_id, amount, status, failure_reason=reason
    )
    return event(kind, refund)


def dispute_by_id(
    kind: str, payment_intent: str, dispute_id: str, amount: int, status: str
) -> dict[str, Any]:
    """Any ``charge.dispute.*`` event for one of possibly several disputes of a charge."""
    return event(kind, _charge_object("dispute", payment_intent, dispute_id, amount, status))
