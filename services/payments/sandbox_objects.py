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
        "next_action": None if paid else row.get("next_action"),
        "canceled_at": row.get("canceled_at"),
        "cancellation_reason": row.get("cancellation_reason"),
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
        "disputed": bool(row.get("disputed")),
        "payment_intent": row["payment_intent"],
        "paid": True,
        "refunded": refunded >= int(row["amount_total"]),
        "status": "succeeded",
        "metadata": row.get("metadata", {}),
    }


# A dispute's evidence, all unset: the sandbox never submits any.
EVIDENCE_FIELDS = [
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
]


def dispute(row: dict[str, Any], created: int = 0, inquiry: bool = False) -> dict[str, Any]:
    """The card holder disputes the whole payment: a chargeback, or an inquiry first."""
    return {
        "id": "dp_sandbox_" + short_id(str(row["id"])),
        "object": "dispute",
        "amount": row["amount_total"],
        "balance_transactions": [],
        "charge": charge_id(row),
        "created": created or row["created"],
        "currency": row["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": (created or row["created"]) + 7 * 86400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        # An inquiry withdraws no money, so the charge can still be refunded.
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": row["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": "general" if inquiry else "fraudulent",
        "status": "warning_needs_response" if inquiry else "needs_response",
    }


def early_fraud_warning(row: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": "issfr_sandbox_" + short_id(str(row["id"])),
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": charge_id(row),
        "created": created,
        "fraud_type": "made_with_stolen_card",
        "livemode": False,
        "payment_intent": row["payment_intent"],
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
        "customer": row.get("customer"),
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": dict(metadata),
        "payment_intent": row["payment_intent"],
        "payment_method": None,
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


# What the sandbox keeps on a stored session for itself; Stripe's objects never show it.
INTERNAL_FIELDS = frozenset(
    {"line_items", "debit_failed", "disputed", "amount_refunded", "refunds", "dispute"}
    | {"after_payment", "challenge", "declines"}
)


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as an event carries it: never line items (Stripe's events have none)."""
    if obj.get("object") != "checkout.session":
        return obj
    return {k: v for k, v in obj.items() if k not in INTERNAL_FIELDS}


def event(
    event_type: str,
    obj: dict[str, Any],
    created: int,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": public(obj)}
    if previous is not None:  # Stripe's *.updated events say what changed
        data["previous_attributes"] = previous
    return {
        "id": "evt_sandbox_" + uuid.uuid4().hex[:24],
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": created,
        "data": data,
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
