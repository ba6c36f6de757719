"""What the sandbox dashboard shows of a payment: its state in words, and only the
actions Stripe would allow in that state (a paid card payment has no bank debit to
settle; a disputed charge cannot be refunded; only an open dispute closes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.payments.sandbox_after import INQUIRY_OPEN, failing_refund, open_dispute_status

ACTIONS = {
    "settle": "Bank debit succeeds",
    "fail": "Bank debit fails",
    "expire": "Expire",
    "refund": "Refund in full",
    "dispute": "Dispute",
    "fail_refund": "Refund fails",
    "win_dispute": "Dispute won",
    "lose_dispute": "Dispute lost",
    "close_inquiry": "Close inquiry",
}


@dataclass(frozen=True)
class PaymentRow:
    id: str
    kind: str
    amount: int
    currency: str
    state: str
    actions: tuple[tuple[str, str], ...]


def _is_intent(row: dict[str, Any]) -> bool:
    return row.get("object") == "payment_intent"


def _paid_state(row: dict[str, Any]) -> str:
    parts = ["paid"]
    refunded = int(row.get("amount_refunded", 0))
    if refunded:
        whole = refunded >= int(row["amount_total"])
        parts.append("refunded" if whole else f"refunded {refunded} {row['currency']}")
    failed = sum(1 for r in row.get("refunds", []) if r["status"] == "failed")
    if failed:
        parts.append("refund failed" if failed == 1 else f"{failed} refunds failed")
    dispute = row.get("dispute")
    if dispute is not None:
        parts.append(f"dispute {dispute['status']}")
    elif row.get("disputed"):
        parts.append("disputed")
    return ", ".join(parts)


def state(row: dict[str, Any]) -> str:
    if row.get("payment_status") == "paid":
        return _paid_state(row)
    waiting = {"canceled": "canceled", "requires_action": "awaiting 3D Secure"}
    if row.get("intent_status") in waiting:
        return waiting[str(row["intent_status"])]
    if _is_intent(row):
        return "awaiting card" if "last_payment_error" not in row else "declined, awaiting card"
    if row.get("debit_failed"):
        return "bank debit failed"
    if row.get("status") == "complete":
        return "bank debit pending"
    return str(row.get("status", "open"))


def valid_actions(row: dict[str, Any]) -> tuple[str, ...]:
    if row.get("payment_status") == "paid":
        return _paid_actions(row)
    if _is_intent(row) or row.get("debit_failed"):
        return ()
    if row.get("status") == "complete":
        return ("settle", "fail")
    if row.get("status") == "open":
        return ("expire",)
    return ()


def _paid_actions(row: dict[str, Any]) -> tuple[str, ...]:
    refundable = int(row.get("amount_refunded", 0)) < int(row["amount_total"])
    disputed = bool(row.get("disputed"))
    dispute = open_dispute_status(row)
    inquiry = dispute in INQUIRY_OPEN
    return tuple(
        name
        for name, allowed in (
            ("refund", refundable and not disputed),
            ("fail_refund", failing_refund(row) is not None),
            ("dispute", not disputed),
            ("win_dispute", dispute is not None and not inquiry),
            ("lose_dispute", dispute is not None and not inquiry),
            ("close_inquiry", inquiry),
        )
        if allowed
    )


def view(row: dict[str, Any]) -> PaymentRow:
    return PaymentRow(
        id=str(row["id"]),
        kind="payment intent" if _is_intent(row) else "checkout session",
        amount=int(row["amount_total"]),
        currency=str(row["currency"]),
        state=state(row),
        actions=tuple((name, ACTIONS[name]) for name in valid_actions(row)),
    )
