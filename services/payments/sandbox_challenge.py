"""3D Secure in the sandbox: a card that must authenticate puts the payment through a
challenge page, which the buyer completes or fails, as on Stripe's test pages.

For an embedded payment the intent goes to ``requires_action`` with a
``redirect_to_url`` next action (``payment_intent.requires_action``); completing
pays it, failing sends ``payment_intent.payment_failed`` and leaves it waiting
for another card (``requires_payment_method``), as Stripe does. A checkout
session stays open through a failed challenge, for another card.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from services.payments import sandbox_after as after
from services.payments import sandbox_objects as objects
from services.payments.sandbox_outbox import Pending

AUTHENTICATION_ERROR = {
    "code": "payment_intent_authentication_failure",
    "type": "card_error",
    "message": (
        "The provided PaymentMethod has failed authentication. You can provide"
        " payment_method_data or a new PaymentMethod to attempt to fulfill this"
        " PaymentIntent again."
    ),
}


def is_intent(row: dict[str, Any]) -> bool:
    return row.get("object") == "payment_intent"


def challenge_url(base_url: str, row: dict[str, Any]) -> str:
    token = row["challenge"]["token"]
    return f"{base_url}/sandbox/3ds/{row['id']}?{urlencode({'token': token})}"


def start_change(base_url: str, return_url: str | None) -> after.Change:
    """The card asks for a challenge: the payment waits for it."""

    def change(row: dict[str, Any]) -> after.Outcome:
        if row["payment_status"] == "paid" or row.get("status") not in (None, "open"):
            return None
        if not is_intent(row):  # Checkout's intent exists from the first confirmation
            row["payment_intent"] = objects.session_payment_intent_id(str(row["id"]))
        row["challenge"] = {"token": secrets.token_urlsafe(18), "return_url": return_url}
        row["intent_status"] = "requires_action"
        row["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": challenge_url(base_url, row), "return_url": return_url},
        }
        return [Pending("payment_intent.requires_action", objects.payment_intent(row))]

    return change


def token_matches(row: dict[str, Any], token: str) -> bool:
    challenge = row.get("challenge")
    if not challenge or not token.isascii():  # compare_digest takes ASCII text only
        return False
    return hmac.compare_digest(str(challenge["token"]), token)


def finish_change(token: str, completed: bool, now: int) -> after.Change:
    """Complete or fail the challenge that ``token`` names; anything else changes nothing."""

    def change(row: dict[str, Any]) -> after.Outcome:
        if not token_matches(row, token) or row.get("intent_status") != "requires_action":
            return None
        if not is_intent(row) and row["status"] != "open":  # expired during the challenge
            return None
        row.pop("next_action", None)
        return _completed(row, now) if completed else _failed(row)

    return change


def _completed(row: dict[str, Any], now: int) -> list[Pending]:
    row.pop("intent_status", None)
    row.pop("last_payment_error", None)
    row["payment_status"] = "paid"
    if is_intent(row):
        row["intent_status"] = "succeeded"
        paid = Pending("payment_intent.succeeded", objects.payment_intent(row))
    else:
        row["status"] = "complete"
        paid = Pending("checkout.session.completed", row)
    return [paid, *after.after_payment(row, None, now)]


def _failed(row: dict[str, Any]) -> list[Pending]:
    row["intent_status"] = "requires_payment_method"
    row["last_payment_error"] = dict(AUTHENTICATION_ERROR)
    row["declines"] = int(row.get("declines", 0)) + 1
    failed = Pending("payment_intent.payment_failed", objects.payment_intent(row))
    if not is_intent(row):  # the session itself stays open; its intent waits for a card
        row.pop("intent_status")
        row.pop("last_payment_error")
    return [failed]


def return_to(row: dict[str, Any]) -> str:
    """Where the buyer goes after the challenge, with what Stripe adds to a return URL."""
    if not is_intent(row):
        if row["payment_status"] == "paid":
            return str(row["success_url"])
        return ""  # back to the checkout page, which shows why
    status = "succeeded" if row["payment_status"] == "paid" else "failed"
    query = urlencode(
        {
            "payment_intent": row["id"],
            "payment_intent_client_secret": row["client_secret"],
            "redirect_status": status,
        }
    )
    return f"{row['challenge']['return_url']}?{query}"
