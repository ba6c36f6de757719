"""What happens to a sandbox payment after it is paid, as Stripe plays it: refunds
(and the refund that fails later), disputes and inquiries with their closing, and
early fraud warnings.

Each function returns a change for ``SandboxPayments._change``: it edits the
stored payment and returns the events Stripe would send, or None for no change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.payments import sandbox_objects as objects
from services.payments.sandbox_outbox import Pending
from services.payments.sandbox_rules import PaymentDeclined, refundable

# What a change returns: no event, an event about the payment, or the events to send.
Outcome = str | list[Pending] | None
Change = Callable[[dict[str, Any]], Outcome]

FOLLOW_UP_S = 1.0  # after-payment events come a moment after the payment's own
REFUND_FAILURE_REASON = "expired_or_canceled_card"
FORMAL_OPEN = frozenset({"needs_response", "under_review"})
INQUIRY_OPEN = frozenset({"warning_needs_response", "warning_under_review"})


def refunded_total(row: dict[str, Any]) -> int:
    """What the charge shows refunded: every refund but the failed or canceled ones."""
    return sum(
        int(r["amount"]) for r in row.get("refunds", []) if r["status"] in ("pending", "succeeded")
    )


def refund_change(
    amount: int | None, metadata: dict[str, str], now: int, made: list[dict[str, Any]]
) -> Change:
    """Refund ``amount`` (None: what is left); the refund made is appended to ``made``."""

    def change(row: dict[str, Any]) -> Outcome:
        refund = objects.refund(row, refundable(row, amount), metadata, created=now)
        row.setdefault("refunds", []).append(refund)
        row["amount_refunded"] = refunded_total(row)
        made.append(refund)
        return [Pending("charge.refunded", objects.charge(row)), Pending("refund.created", refund)]

    return change


def failing_refund(row: dict[str, Any]) -> dict[str, Any] | None:
    """The latest refund that can still fail: only a card that fails refunds has one."""
    if row.get("after_payment") != "refund_fails":
        return None
    live = [r for r in row.get("refunds", []) if r["status"] in ("pending", "succeeded")]
    return live[-1] if live else None


def fail_refund_change() -> Change:
    """The card's issuer refuses the refund: the money stays with us, as Stripe says later."""

    def change(row: dict[str, Any]) -> Outcome:
        refund = failing_refund(row)
        if refund is None:
            return None
        previous = {"status": refund["status"], "failure_reason": None}
        refund.update(status="failed", failure_reason=REFUND_FAILURE_REASON)
        refund.setdefault("failure_balance_transaction", None)
        row["amount_refunded"] = refunded_total(row)
        return [
            Pending("refund.updated", dict(refund), previous),
            Pending("refund.failed", dict(refund)),
            Pending("charge.refund.updated", dict(refund), previous),
        ]

    return change


def dispute_change(now: int, inquiry: bool = False) -> Change:
    """The card holder disputes the payment (a chargeback), or the issuer asks first."""

    def change(row: dict[str, Any]) -> Outcome:
        if row["payment_status"] != "paid" or row.get("disputed"):
            return None
        return open_dispute(row, now, inquiry)

    return change


def open_dispute(row: dict[str, Any], now: int, inquiry: bool, delay_s: float = 0) -> list[Pending]:
    dispute = objects.dispute(row, now, inquiry)
    row.update(disputed=True, dispute=dispute)
    events = [Pending("charge.dispute.created", dict(dispute), delay_s=delay_s)]
    if not inquiry:  # a chargeback takes the money at once; an inquiry takes none
        events.append(Pending("charge.dispute.funds_withdrawn", dict(dispute), delay_s=delay_s))
    return events


def open_dispute_status(row: dict[str, Any]) -> str | None:
    dispute = row.get("dispute")
    status = None if dispute is None else str(dispute["status"])
    return status if status in FORMAL_OPEN | INQUIRY_OPEN else None


def close_dispute_change(won: bool) -> Change:
    """The issuer decides: evidence goes in (under review), then the dispute closes.

    An inquiry only closes (``warning_closed``); ``won`` is then ignored.
    """

    def change(row: dict[str, Any]) -> Outcome:
        status = open_dispute_status(row)
        if status is None:
            return None
        dispute: dict[str, Any] = row["dispute"]
        inquiry = status in INQUIRY_OPEN
        events: list[Pending] = []
        reviewing = "warning_under_review" if inquiry else "under_review"
        if status != reviewing:
            dispute.update(status=reviewing)
            dispute["evidence_details"]["has_evidence"] = True
            dispute["evidence_details"]["submission_count"] = 1
            events.append(Pending("charge.dispute.updated", dict(dispute), {"status": status}))
        final = "warning_closed" if inquiry else ("won" if won else "lost")
        dispute.update(status=final)
        events.append(Pending("charge.dispute.closed", dict(dispute), {"status": reviewing}))
        if final == "won":  # Stripe gives the disputed amount back
            events.append(Pending("charge.dispute.funds_reinstated", dict(dispute)))
        return events

    return change


def unless_canceled(change: Change) -> Change:
    """Stripe refuses to confirm a canceled intent."""

    def guarded(intent: dict[str, Any]) -> Outcome:
        if intent.get("intent_status") == "canceled":
            raise PaymentDeclined("This payment was canceled; start a new one.")
        return change(intent)

    return guarded


def after_payment(row: dict[str, Any], behaviour: str | None, now: int) -> list[Pending]:
    """The events a paid card brings later (a dispute, an inquiry, a fraud warning)."""
    row["after_payment"] = behaviour
    if behaviour in ("dispute", "inquiry"):
        return open_dispute(row, now, behaviour == "inquiry", FOLLOW_UP_S)
    if behaviour == "early_fraud_warning":
        warning = objects.early_fraud_warning(row, now)
        return [Pending("radar.early_fraud_warning.created", warning, delay_s=FOLLOW_UP_S)]
    return []
