"""What the sandbox accepts and refuses, as Stripe would: test cards, refunds, reused keys."""

from __future__ import annotations

import json
from typing import Any

from services.payments import sandbox_objects as objects
from services.payments.errors import refused

SUCCESS_CARDS = frozenset({"4242424242424242", "5555555555554444", "4000056655665556"})
DECLINE_CARDS = {
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000000069": "Your card has expired.",
}


class PaymentDeclined(Exception):
    """A test card that declines; the session (or payment intent) stays open for another try."""


def card_problem(card_number: str) -> str | None:
    """Why a test card is declined, or None when it pays."""
    digits = "".join(ch for ch in card_number if ch.isdigit())
    if digits in DECLINE_CARDS:
        return DECLINE_CARDS[digits]
    if digits not in SUCCESS_CARDS:
        return "Use a Stripe test card, for example 4242 4242 4242 4242."
    return None


def refundable(session: dict[str, Any], amount: int | None) -> int:
    """The amount to refund now, or the PaymentsError Stripe would refuse it with."""
    if session["payment_status"] != "paid":
        raise refused(f"Payment {session['payment_intent']} has not succeeded; no refund")
    left = int(session["amount_total"]) - int(session.get("amount_refunded", 0))
    if left <= 0:
        raise refused(f"Charge {objects.charge_id(session)} has already been refunded.")
    if amount is None:
        return left
    if amount < 1:
        raise refused(f"Refund amount must be a positive integer, got {amount}.")
    if amount > left:
        raise refused(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})."
        )
    return amount


def replayed_refund(key: str, request: str, first_request: str, body: str) -> dict[str, Any]:
    """The first refund made with ``key``; Stripe refuses the key with other parameters."""
    if request != first_request:
        raise refused(
            f"Keys for idempotent requests can only be used with the same parameters"
            f" they were first used with: {key!r}"
        )
    refund: dict[str, Any] = json.loads(body)
    return refund
