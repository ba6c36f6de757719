"""Refunds and disputes from Stripe: tokens taken back, debt, and restoring won disputes.

Each event first updates what the purchase knows (the largest cumulative
refund seen; the dispute's amount and status), then brings the tokens taken
back for the purchase to the one target those facts give:

    refunds alone:               tokens * refunded // amount
    with an open or lost dispute: tokens * min(amount, refunded + disputed) // amount

Both steps run inside one store transaction (``apply_for_purchase``), so
repeated, concurrent and out-of-order events converge on one end state: a
refund during a dispute moves nothing new, a won dispute gives back only what
the refunds did not take, and a ``closed`` event that overtakes its
``created`` is remembered. A clawback larger than the balance takes the
balance to zero and records the rest as debt (ledger rule). Every clawback
writes a security alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from services.faults import AFTER_RESTORE_COMMIT, fault_point
from services.ledger.model import JournalTransaction, Operation, OpKind, TxnType, format_time
from services.ledger.rules import validate
from services.payments import payload
from services.payments.model import Purchase, PurchaseState
from services.payments.purchase_rules import deferred_name
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger

log = logging.getLogger("token_store.clawbacks")
ACTIVE_DISPUTE = ("open", "lost")
# The outcome on the log line of a clawback that left the account in debt.
CLAWBACK_INTO_DEBT = "clawback_into_debt"


def share(purchase: Purchase, amount: int) -> int:
    """Tokens in proportion to ``amount`` of the price; the whole price is every token."""
    if purchase.amount <= 0:
        return 0
    return purchase.tokens * min(amount, purchase.amount) // purchase.amount


def target(p: Purchase) -> tuple[int, int]:
    """(refund tokens, dispute tokens) that should be taken back, from what is known.

    A purchase held in review was never credited, so refunding it takes nothing back.
    """
    if p.state is PurchaseState.NEEDS_REVIEW and p.credit_txn_id is None:
        return 0, 0
    refund = share(p, p.refunded_amount)
    if p.dispute_status not in ACTIVE_DISPUTE:
        return refund, 0
    return refund, share(p, p.refunded_amount + p.dispute_amount) - refund


def taken(p: Purchase) -> int:
    return p.refunded_tokens + p.disputed_tokens


Learn = Callable[[Purchase], Purchase]
DEFERRED = "deferred"


class Clawbacks:
    def __init__(
        self,
        store: Store,
        ledger: TokenLedger,
        security: SecurityService,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.security = security
        self.clock = clock

    # -- the three events -------------------------------------------------------

    def refunded(self, charge: Mapping[str, Any]) -> str:
        refunded = payload.amount(charge, "amount_refunded")

        def learn(p: Purchase) -> Purchase:
            if refunded <= p.refunded_amount:
                return p
            return p.with_changes(self._now(), refunded_amount=refunded)

        return self._settle(charge, learn, "refund", "refund", charge_id=charge.get("id"))

    def dispute_opened(self, dispute: Mapping[str, Any]) -> str:
        dispute_id, amount = payload.text(dispute, "id"), payload.amount(dispute, "amount")

        def learn(p: Purchase) -> Purchase:
            if p.dispute_id is not None:  # seen already, or closed before this arrived
                return p
            return p.with_changes(
                self._now(), dispute_id=dispute_id, dispute_status="open", dispute_amount=amount
            )

        return self._settle(dispute, learn, "dispute", "dispute_opened", dispute_id=dispute_id)

    def dispute_closed(self, dispute: Mapping[str, Any]) -> str:
        dispute_id = payload.text(dispute, "id")
        # Only needed when the closed event overtook the created one.
        amount = payload.amount(dispute, "amount") if "amount" in dispute else 0
        status = "won" if payload.text(dispute, "status") == "won" else "lost"

        def learn(p: Purchase) -> Purchase:
            if p.dispute_status in ("won", "lost"):
                return p
            return p.with_changes(
                self._now(),
                dispute_id=p.dispute_id or dispute_id,
                dispute_status=status,
                dispute_amount=p.dispute_amount or amount,
            )

        outcome = self._settle(dispute, learn, "dispute", "dispute_closed", dispute_id=dispute_id)
        stored = self._find(dispute)
        if stored is None or outcome in ("no_purchase", DEFERRED):
            return outcome
        return f"dispute_{stored.dispute_status}"

    # -- events that overtook their payment -----------------------------------------

    def _defer(self, obj: Mapping[str, Any], kind: str) -> bool:
        """Keep a refund or dispute whose payment intent no purchase knows yet.

        Checkout learns a session's payment intent from the event that pays it,
        and Stripe does not promise order: a refund or a dispute can arrive
        first (say, while that event is being retried). Kept by payment intent
        and kind; for refunds, the largest cumulative amount wins.
        """
        intent = obj.get("payment_intent")
        if not isinstance(intent, str) or not intent:
            return False
        amount = payload.amount(obj, "amount_refunded") if kind == "refund" else None

        def keep(kept: dict[str, Any] | None) -> dict[str, Any] | None:
            # Read and written in one store transaction: two deliveries racing
            # (500 then 999 refunded in all) can never leave the smaller one kept.
            if amount is not None and kept and amount <= int(kept.get("amount_refunded") or -1):
                return None
            return dict(obj)

        self.store.update_setting(deferred_name(intent, kind), keep)
        log.info("%s for unknown payment %s kept until its purchase is paid", kind, intent)
        return True

    def apply_deferred(self, payment_intent: str) -> None:
        """Apply what arrived before the purchase knew its payment intent, in Stripe's order."""
        handlers = (
            ("refund", self.refunded),
            ("dispute_opened", self.dispute_opened),
            ("dispute_closed", self.dispute_closed),
        )
        for kind, handle in handlers:
            kept = self.store.get_setting(deferred_name(payment_intent, kind))
            if kept:
                handle(kept)  # converges on one end state however often it runs

    # -- one path for all three ---------------------------------------------------

    def _find(self, obj: Mapping[str, Any]) -> Purchase | None:
        intent = obj.get("payment_intent")
        if not isinstance(intent, str) or not intent:
            return None
        return self.store.find_purchase(payment_intent_id=intent)

    def _settle(
        self, obj: Mapping[str, Any], learn: Learn, what: str, kind: str, **details: Any
    ) -> str:
        purchase = self._find(obj)
        if purchase is None and self._defer(obj, kind):
            # Look again: the purchase may have learnt its payment intent meanwhile,
            # after its credit looked for deferred events. Both sides write, then read.
            purchase = self._find(obj)
            if purchase is None:
                return DEFERRED
        if purchase is None:
            return "no_purchase"

        def build(p: Purchase) -> Operation | None:
            return self._move(p, learn(p), what)

        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            known = learn(p)
            refund, dispute = target(known)
            settled = known.with_changes(
                known.updated_at,
                refunded_tokens=refund,
                disputed_tokens=dispute,
                clawback_moves=p.clawback_moves + (txn is not None),
            )
            return None if settled == p else settled

        txn, settled = self.store.apply_for_purchase(
            purchase.id, (purchase.user_id,), build, mark, self.clock()
        )
        if txn is None:
            if settled.dispute_status == "won":
                # An earlier attempt may have restored and died before repaying.
                self._repay_from_restore(settled)
            return f"{what}_unchanged"
        if txn.kind is OpKind.CREDIT:
            fault_point(AFTER_RESTORE_COMMIT)
            self._repay_from_restore(settled)
            return f"{what}_restored"
        entry = txn.user_entry(purchase.user_id)
        moved = -entry.amount
        self.security.alert(
            f"{what}_clawback",
            "warning",
            user_id=purchase.user_id,
            purchase_id=purchase.id,
            reason=f"{what}: {moved} tokens taken back, debt now {entry.debt_after}",
            **{k: v for k, v in details.items() if isinstance(v, str)},
        )
        if entry.debt_after:
            # Its own line, so that a log-based metric counts accounts pushed into debt.
            log.warning(
                "%s clawback for purchase %s left the account owing %d tokens",
                what,
                purchase.id,
                entry.debt_after,
                extra={
                    "purchase_id": purchase.id,
                    "user_id": purchase.user_id,
                    "outcome": CLAWBACK_INTO_DEBT,
                },
            )
        return f"{what}_clawed_back"

    def _repay_from_restore(self, settled: Purchase) -> None:
        """Repay debt from the tokens a won dispute gave back, once per restore.

        Only restores credit here (a won dispute), and each one adds a move, so the
        count names it for the retry too, which finds the purchase already settled."""
        restore = f"restore:{settled.id}:{settled.clawback_moves}"
        self.ledger.settle_debt(settled.user_id, restore)

    def _move(self, before: Purchase, known: Purchase, what: str) -> Operation | None:
        """The ledger operation that brings the tokens taken back to ``target(known)``."""
        refund, dispute = target(known)
        delta = refund + dispute - taken(before)
        # The same totals can recur (taken back, restored, taken again): count the moves.
        key = f"{before.id}:{before.clawback_moves}:{taken(before)}->{refund + dispute}"
        refs = {"purchase_id": before.id}
        reason = f"{before.pack_id} pack"
        if delta > 0:
            kind = TxnType.REFUND if refund > before.refunded_tokens else TxnType.DISPUTE
            return validate(
                Operation(
                    OpKind.CLAWBACK,
                    f"clawback:{key}",
                    before.user_id,
                    delta,
                    kind,
                    reason=reason,
                    refs=refs,
                )
            )
        if delta < 0:
            return validate(
                Operation(
                    OpKind.CREDIT,
                    f"restore:{key}",
                    before.user_id,
                    -delta,
                    TxnType.DISPUTE_REVERSAL,
                    reason=reason,
                    refs=refs,
                )
            )
        return None

    def _now(self) -> str:
        return format_time(self.clock())
