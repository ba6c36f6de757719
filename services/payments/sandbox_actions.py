"""What the sandbox dashboard does to a payment, playing the card holder, the bank or
the issuer: settle or fail a bank debit, expire a session, refund, dispute, fail a
refund, close a dispute. ``SandboxPayments`` takes these as a base class."""

from __future__ import annotations

import abc
from typing import Any

from services.payments import sandbox_after as after


class DashboardActions(abc.ABC):
    @abc.abstractmethod
    def _now(self) -> int:
        """The gateway's clock, in Unix seconds."""

    @abc.abstractmethod
    def _change(self, session_id: str, change: after.Change) -> dict[str, Any]:
        """Apply `change` to the stored session and queue the event it names."""

    def settle_bank_debit(self, session_id: str, succeeded: bool) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> str | None:
            if session["status"] != "complete" or session["payment_status"] != "unpaid":
                return None
            if session.get("debit_failed"):  # settled already: it failed
                return None
            if succeeded:
                session["payment_status"] = "paid"
                return "checkout.session.async_payment_succeeded"
            session["debit_failed"] = True
            return "checkout.session.async_payment_failed"

        return self._change(session_id, change)

    def expire(self, session_id: str) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> str | None:
            if session["status"] != "open":
                return None
            session["status"] = "expired"
            return "checkout.session.expired"

        return self._change(session_id, change)

    def refund(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund what is left of a paid payment, or ``amount`` more (charge.refunded)."""
        return self._change(session_id, after.refund_change(amount, {}, self._now(), []))

    def dispute(self, session_id: str, inquiry: bool = False) -> dict[str, Any]:
        """The card holder disputes the whole payment; Stripe sends charge.dispute.created."""
        return self._change(session_id, after.dispute_change(self._now(), inquiry))

    def fail_refund(self, session_id: str) -> dict[str, Any]:
        """A refund on a card that fails refunds turns failed (refund.failed and updates)."""
        return self._change(session_id, after.fail_refund_change())

    def close_dispute(self, session_id: str, won: bool) -> dict[str, Any]:
        """The issuer decides the open dispute: won or lost (an inquiry just closes)."""
        return self._change(session_id, after.close_dispute_change(won))
