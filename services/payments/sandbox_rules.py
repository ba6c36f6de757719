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
# Stripe's 3D Secure cards: on a one-off, on-session payment each asks for a challenge,
# and the payment succeeds once it is completed.
AUTHENTICATION_CARDS = frozenset(
    {
        "4000002500003155",  # required unless set up for later off-session use
        "4000002760003184",  # required on every payment
        "4000000000003220",  # 3D Secure 2 required
    }
)
# Cards that pay, then play what Stripe's testing docs say happens afterwards.
AFTER_PAYMENT_CARDS = {
    "4000000000005126": "refund_fails",  # a refund reads succeeded, then turns failed
    "4000000000000259": "dispute",  # disputed as fraudulent: needs_response
    "4000000000001976": "inquiry",  # an inquiry: warning_needs_response
    "4000000000005423": "early_fraud_warning",  # an actionable early fraud warning
}
AUTHENTICATION_FAILED = (
    "We are unable to authenticate your payment method. Please choose a different"
    " payment method and try again."
)


class PaymentDeclined(Exception):
    """A test card that declines; the session (or payment intent) stays open for another try."""


def digits_of(card_number: str) -> str:
    return "".join(ch for ch in card_number if ch.isdigit())


def card_problem(card_number: str) -> str | None:
    """Why a test card is declined, or None when it pays (perhaps after a challenge)."""
    digits = digits_of(card_number)
    if digits in DECLINE_CARDS:
        return DECLINE_CARDS[digits]
    if digits not in SUCCESS_CARDS | AUTHENTICATION_CARDS | AFTER_PAYMENT_CARDS.keys():
        return "Use a Stripe test card, for example 4242 4242 4242 4242."
    return None


def needs_authentication(card_number: str) -> bool:
    return digits_of(card_number) in AUTHENTICATION_CARDS


def after_payment(card_number: str) -> str | None:
    """What happens after this card paid: refund_fails, dispute, inquiry, early_fraud_warning."""
    return AFTER_PAYMENT_CARDS.get(digits_of(card_number))


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
