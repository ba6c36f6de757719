"""The sandbox's Stripe-shaped objects: what Stripe would show for a stored payment.

Pure functions of a stored row (a checkout session, or an embedded payment
intent stored beside them) and, where Stripe stamps one, the time; ids derive
from our own ids, so the same purchase always has the same objects.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from config.catalog import Pack
from services.payments.stripe_gateway import STRIPE_API_VERSION


def short_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def checkout_session_id(purchase_id: str) -> str:
    return "cs_test_sandbox_" + short_id(purchase_id)


def payment_intent_id(purchase_id: str) -> str:
    """An embedded payment's intent; salted so it never equals a session's intent id."""
    return "pi_sandbox_" + short_id("intent:" + purchase_id)


def session_payment_intent_id(session_id: str) -> str:
    """The intent Stripe makes when a checkout session is paid."""
    return "pi_sandbox_" + short_id(session_id)


def charge_id(row: dict[str, Any]) -> str:
    return "ch_sandbox_" + short_id(str(row["id"]))


def checkout_session(
    session_id: str,
    pack: Pack,
    *,
    customer_id: str | None,
    client_reference_id: str,
    success_url: str,
    cancel_url: str,
    metadata: dict[str, str],
    expires_at: int,
    url: str,
    created: int,
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_subtotal": pack.price_cents,
        "amount_total": pack.price_cents,
        "currency": pack.currency,
        "client_reference_id": client_reference_id,
        "customer": customer_id,
        "metadata": dict(metadata),
        "payment_intent": None,
        "payment_method_types": ["card"],
        "success_url": success_url.replace("{CHECKOUT_SESSION_ID}", session_id),
        "cancel_url": cancel_url,
        "url": url,
        "created": created,
        "expires_at": expires_at,
        "livemode": False,
        "line_items": line_items(pack),
    }


def intent_row(
    intent_id: str,
    pack: Pack,
    *,
    customer_id: str | None,
    metadata: dict[str, str],
    created: int,
) -> dict[str, Any]:
    """An embedded payment as stored: the session-like fields ``payment_intent`` reads."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "intent_status": "requires_payment_method",
        "payment_status": "unpaid",
        "amount_total": pack.price_cents,
        "currency": pack.currency,
        "customer": customer_id,
        "metadata": dict(metadata),
        "payment_intent": intent_id,
        "payment_method_types": ["card"],
        "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
        "created": created,
        "livemode": False,
    }


def payment_intent(row: dict[str, Any]) -> dict[str, Any]:
    """The payment intent of a checkout session or an embedded payment, as Stripe shows it."""
    paid = row["payment_status"] == "paid"
    default = "processing" if row.get("status") == "complete" else "requires_payment_method"
    return {
        "id": row["payment_intent"],
        "object": "payment_intent",
        "amount": row["amount_total"],
        "amount_capturable": 0,
        "amount_received": row["amount_total"] if paid else 0,
        "capture_method": "automatic",
        "created": row["created"],
        "currency": row["currency"],
        "customer": row.get("customer"),
        "last_payment_error": row.get("last_payment_error"),
        "latest_charge": charge_id(row) if paid else None,
        "livemode": False,
        "metadata": dict(row.get("metadata") or {}),
        "payment_method_types": list(row.get("payment_method_types") or ["card"]),
        "status": "succeeded" if paid else row.get("intent_status", default),
    }


def charge(row: dict[str, Any]) -> dict[str, Any]:
    refunded = int(row.get("amount_refunded", 0))
    return {
        "id": charge_id(row),
        "object": "charge",
        "amount": row["amount_total"],
        "amount_captured": row["amount_total"],
        "amount_refunded": refunded,
        "currency": row["currency"],
        "payment_intent": row["payment_intent"],
        "paid": True,
        "refunded": refunded >= int(row["amount_total"]),
        "status": "succeeded",
        "metadata": row.get("metadata", {}),
    }


def dispute(row: dict[str, Any]) -> dict[str, Any]:
    """The card holder disputes the whole payment."""
    return {
        "id": "dp_sandbox_" + short_id(str(row["id"])),
        "object": "dispute",
        "amount": row["amount_total"],
        "currency": row["currency"],
        "charge": charge_id(row),
        "payment_intent": row["payment_intent"],
        "status": "needs_response",
        "reason": "fraudulent",
    }


def refund(
    row: dict[str, Any], amount: int, metadata: dict[str, str], created: int
) -> dict[str, Any]:
    return {
        "id": "re_sandbox_" + uuid.uuid4().hex[:24],
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge_id(row),
        "created": created,
        "currency": row["currency"],
        "metadata": dict(metadata),
        "payment_intent": row["payment_intent"],
        "reason": None,
        "status": "succeeded",
    }


def event(event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": "evt_sandbox_" + uuid.uuid4().hex[:24],
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def line_items(pack: Pack) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": "li_sandbox_" + pack.id,
                "object": "item",
                "amount_total": pack.price_cents,
                "currency": pack.currency,
                "description": pack.name,
                "quantity": 1,
                "price": {
                    "id": pack.stripe_price_id or f"price_sandbox_{pack.id}",
                    "object": "price",
                    "unit_amount": pack.price_cents,
                    "currency": pack.currency,
                },
            }
        ],
        "has_more": False,
    }
