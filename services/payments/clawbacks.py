"""Refunds and disputes from Stripe: tokens taken back, debt, and tokens given back.

Each event first updates what the purchase knows, by refund id
(``refund_records``) and by dispute id (``disputes``), then brings the tokens
taken back for the purchase to the one target those records give::

    refunds:                 tokens * refunded // amount
    refunds and disputes:    tokens * min(amount, refunded + disputed) // amount

where ``refunded`` is what the active refunds take and ``disputed`` the sum of
the disputes that take tokens now. Both steps run inside one store
transaction (``apply_for_purchase``), and each change is one ledger operation
whose key names the purchase and the change (a refund id and its new status, a
dispute id and its new status, the charge's cumulative figure), so repeated,
concurrent and out-of-order events converge on one end state and a redelivery
never moves tokens twice. A clawback larger than the balance takes the balance
to zero and records the rest as debt (ledger rule), then the rest is followed
to whom the buyer sent tokens (``clawback_chain``): only what nobody still
holds stays the buyer's debt. A gift's shortfall is the payer's debt, never the
recipient's, and is not followed. Tokens given back go to the credited account
and repay its debt first. Every clawback writes a security alert listing the
chain, and so does a refund that fails.

One module, over 400 lines, on purpose: every refund and dispute event, and the
early ones kept until their purchase is known, ends in the same target
computation and the same one-transaction write, which must not exist twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.faults import AFTER_RESTORE_COMMIT, fault_point
from services.ledger.model import JournalTransaction, Operation, OpKind, TxnType, format_time
from services.ledger.rules import validate
from services.payments import disputes as dispute_rules
from services.payments import payload
from services.payments import refund_records as refund_rules
from services.payments.clawback_chain import DEFAULT_WINDOW_S, ClawbackChain, Hop, describe
from services.payments.disputes import DisputeFact
from services.payments.model import Purchase, PurchaseState
from services.payments.purchase_rules import DEFERRED_KINDS, deferred_name
from services.payments.refund_records import RefundFact
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger

log = logging.getLogger("token_store.clawbacks")
# The outcome on the log line of a clawback that left the account in debt.
CLAWBACK_INTO_DEBT = "clawback_into_debt"
REFUND_FAILED = "refund_failed"
# Longer change names are hashed, so that a key stays within the ledger's limit.
MAX_CHANGE_NAME = 120
# The stored records of an earlier version: one dispute, its status open | won | lost.
LEGACY_DISPUTE = {"open": ("needs_response", 2), "won": ("won", 9), "lost": ("lost", 4)}
KEPT_FIELDS = ("id", "object", "payment_intent", "charge", "amount", "amount_refunded", "status")


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
    return refund, share(p, p.refunded_amount + p.dispute_amount) - refund


def taken(p: Purchase) -> int:
    return p.refunded_tokens + p.disputed_tokens


@dataclass(frozen=True)
class Known:
    """What a purchase knows of its refunds and disputes."""

    refunds: dict[str, dict[str, Any]]
    charge_refunded: int
    disputes: dict[str, dict[str, Any]]


def known(p: Purchase) -> Known:
    """The purchase's records; one stored before refunds were kept by id is read as one."""
    refunds = {k: dict(v) for k, v in p.refunds.items()}
    charge = p.charge_refunded or (0 if refunds else p.refunded_amount)
    disputes = {k: dict(v) for k, v in p.disputes.items()}
    if not disputes and p.dispute_id and p.dispute_status in LEGACY_DISPUTE:
        status, rank = LEGACY_DISPUTE[p.dispute_status]
        amount = p.dispute_amount
        disputes[p.dispute_id] = {"amount": amount, "status": status, "rank": rank, "funds": None}
    return Known(refunds, charge, disputes)


def with_known(p: Purchase, facts: Known, now: str, dispute_status: str | None) -> Purchase:
    first_dispute = p.dispute_id or next(iter(sorted(facts.disputes)), None)
    return p.with_changes(
        now,
        refunds=facts.refunds,
        charge_refunded=facts.charge_refunded,
        refunded_amount=refund_rules.refunded_amount(
            facts.refunds, facts.charge_refunded, p.amount
        ),
        disputes=facts.disputes,
        dispute_amount=dispute_rules.disputed_amount(facts.disputes),
        dispute_id=first_dispute,
        dispute_status=dispute_status or p.dispute_status,
    )


# Learns from one event: the purchase as it now knows more, and the change's name
# (None: the event told nothing new).
Learn = Callable[[Purchase], tuple[Purchase, str | None]]
DEFERRED = "deferred"


class Clawbacks:
    def __init__(
        self,
        store: Store,
        ledger: TokenLedger,
        security: SecurityService,
        clock: Callable[[], datetime],
        window_s: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.security = security
        self.clock = clock
        self.chain = ClawbackChain(store, clock, window_s)

    # -- refunds ------------------------------------------------------------------

    def refunded(self, charge: Mapping[str, Any]) -> str:
        """``charge.refunded``: the cumulative amount, and the refunds if the charge lists them."""
        amount = payload.amount(charge, "amount_refunded")
        listed = refund_rules.refunds_in_charge(charge)

        def learn(p: Purchase) -> tuple[Purchase, str | None]:
            facts = known(p)
            changes = [f"charge={amount}"] if amount > facts.charge_refunded else []
            refunds = facts.refunds
            for fact in listed:
                refunds, change = refund_rules.learn(refunds, fact)
                changes += [change] if change else []
            if not changes:
                return p, None
            charge_refunded = max(amount, facts.charge_refunded)
            updated = Known(refunds, charge_refunded, facts.disputes)
            return with_known(p, updated, self._now(), None), "+".join(changes)

        return self._settle(charge, learn, "refund", "refund", charge_id=charge.get("id"))

    def refund_changed(self, refund: Mapping[str, Any]) -> str:
        """``refund.created`` / ``updated`` / ``failed``, ``charge.refund.updated``."""
        fact = RefundFact.of(refund)
        failed = False

        def learn(p: Purchase) -> tuple[Purchase, str | None]:
            nonlocal failed  # the last run decides: a store may retry the transaction
            facts = known(p)
            refunds, change = refund_rules.learn(facts.refunds, fact)
            failed = change is not None and fact.status == "failed"
            if change is None:
                return p, None
            updated = Known(refunds, facts.charge_refunded, facts.disputes)
            return with_known(p, updated, self._now(), None), change

        outcome = self._settle(refund, learn, "refund", "refund", refund_id=fact.id)
        if failed:
            self._refund_failed(refund, fact)
        return outcome

    def _refund_failed(self, refund: Mapping[str, Any], fact: RefundFact) -> None:
        """One alert per failed refund: the buyer got no money back, so keeps the tokens."""
        purchase = self._find(refund)
        self.security.alert(
            REFUND_FAILED,
            "warning",
            user_id=purchase.user_id if purchase else None,
            purchase_id=purchase.id if purchase else None,
            reason=f"refund {fact.id} of {fact.amount} failed"
            f" ({refund.get('failure_reason') or 'no reason given'}); its tokens are returned",
            refund_id=fact.id,
        )

    # -- disputes -----------------------------------------------------------------

    def dispute_opened(self, dispute: Mapping[str, Any]) -> str:
        """``charge.dispute.created``; a dispute without a status is a chargeback."""
        return self.dispute_changed({"status": "needs_response", **dispute})

    def dispute_closed(self, dispute: Mapping[str, Any]) -> str:
        outcome = self.dispute_changed(dispute)
        stored = self._find(dispute)
        if stored is None or outcome in ("no_purchase", DEFERRED):
            return outcome
        record = known(stored).disputes.get(payload.text(dispute, "id"), {})
        return f"dispute_{record.get('status') or 'unchanged'}"

    def funds_withdrawn(self, dispute: Mapping[str, Any]) -> str:
        return self.dispute_changed(dispute, dispute_rules.WITHDRAWN)

    def funds_reinstated(self, dispute: Mapping[str, Any]) -> str:
        return self.dispute_changed(dispute, dispute_rules.REINSTATED)

    def dispute_changed(self, dispute: Mapping[str, Any], funds: str | None = None) -> str:
        """Any ``charge.dispute.*`` event: the dispute's status, and the money's news."""
        fact = DisputeFact.of(dispute, funds)

        def learn(p: Purchase) -> tuple[Purchase, str | None]:
            facts = known(p)
            disputes, change = dispute_rules.learn(facts.disputes, fact)
            if change is None:
                return p, None
            updated = Known(facts.refunds, facts.charge_refunded, disputes)
            return with_known(p, updated, self._now(), disputes[fact.id]["status"]), change

        kind = "dispute_funds" if funds else "dispute"
        return self._settle({**dispute, "funds": funds}, learn, "dispute", kind, dispute_id=fact.id)

    # -- events that overtook their payment -----------------------------------------

    def _defer(self, obj: Mapping[str, Any], kind: str) -> bool:
        """Keep a refund or dispute whose payment intent no purchase knows yet.

        Checkout learns a session's payment intent from the event that pays it,
        and Stripe does not promise order: a refund or a dispute can arrive
        first (say, while that event is being retried). Kept by payment intent,
        one record for refunds and one for disputes, each event once by what it
        says; of the charge's cumulative amounts, the largest. Applying them in
        any order ends in one state, since every record only moves forward.
        """
        intent = obj.get("payment_intent")
        if not isinstance(intent, str) or not intent:
            return False
        kept_obj = {k: obj[k] for k in (*KEPT_FIELDS, "funds", "refunds") if k in obj}
        item = _deferred_item(kept_obj)
        name = deferred_name(intent, "refund" if kind == "refund" else "dispute_opened")

        def keep(kept: dict[str, Any] | None) -> dict[str, Any] | None:
            # Read and written in one store transaction: two deliveries racing
            # (500 then 999 refunded in all) can never leave the smaller one kept.
            items = dict((kept or {}).get("items") or {})
            if kept and "items" not in kept:  # one object, as an earlier version kept it
                items[_deferred_item(kept)] = kept
            before = items.get(item)
            if before is not None and int(before.get("amount_refunded") or 0) >= int(
                kept_obj.get("amount_refunded") or 0
            ):
                return None
            items[item] = kept_obj
            return {"items": items}

        self.store.update_setting(name, keep)
        log.info("%s for unknown payment %s kept until its purchase is paid", kind, intent)
        return True

    def apply_deferred(self, payment_intent: str) -> None:
        """Apply what arrived before the purchase knew its payment intent."""
        for kind in DEFERRED_KINDS:
            kept = self.store.get_setting(deferred_name(payment_intent, kind))
            if not kept:
                continue
            items = kept.get("items") if "items" in kept else {"": kept}
            for obj in (items or {}).values():
                self._replay(obj, kind)  # converges on one end state however often it runs

    def _replay(self, obj: Mapping[str, Any], kind: str) -> None:
        what = obj.get("object")
        if what == "charge":
            self.refunded(obj)
        elif what == "refund":
            self.refund_changed(obj)
        elif kind == "dispute_closed":
            self.dispute_closed(obj)
        elif obj.get("funds"):
            self.dispute_changed(obj, str(obj["funds"]))
        else:
            self.dispute_opened(obj)

    # -- one path for every event ---------------------------------------------------

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
            learnt, change = learn(p)
            return None if change is None else self._move(p, learnt, change)

        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            learnt, change = learn(p)
            if change is None:
                return None
            refund, dispute = target(learnt)
            moves = p.clawback_moves + (txn is not None)
            return learnt.with_changes(
                learnt.updated_at,
                refunded_tokens=refund,
                disputed_tokens=dispute,
                clawback_moves=moves,
                repay_move=moves if _left_debt(txn, p.user_id) else p.repay_move,
                followed=p.followed + _to_follow(txn),
            )

        users = tuple(dict.fromkeys((purchase.user_id, purchase.buyer_id)))
        txn, settled = self.store.apply_for_purchase(purchase.id, users, build, mark, self.clock())
        hops = self._follow(settled, txn)
        if txn is None:
            if settled.repay_move and settled.repay_move == settled.clawback_moves:
                # An earlier attempt gave tokens back and may have died before repaying.
                self._repay_from_restore(settled)
            return f"{what}_unchanged"
        if txn.kind is OpKind.CREDIT:
            fault_point(AFTER_RESTORE_COMMIT)
            self._repay_from_restore(settled)
            return f"{what}_restored"
        self._alert(purchase, txn, what, details, hops)
        return f"{what}_clawed_back"

    def _follow(self, settled: Purchase, txn: JournalTransaction | None) -> list[Hop]:
        """Follow each clawback of the purchase whose chain is unfinished (hops made are
        found by their keys), then mark it finished; returns ``txn``'s own hops.

        A chain finished is never walked again: what a recipient receives later is
        not followed by the purchase's later events.
        """
        if not settled.followed:
            return []
        credit = self.store.get_transaction(settled.credit_txn_id or "")
        since = credit.created_at if credit else settled.created_at
        own: list[Hop] = []
        for clawback_id in settled.followed:
            hops = self.chain.follow(clawback_id, settled.user_id, since)
            own = hops if txn is not None and clawback_id == txn.id else own
        done = set(settled.followed)

        def finish(p: Purchase) -> Purchase | None:
            rest = [x for x in p.followed if x not in done]
            return None if rest == p.followed else p.with_changes(self._now(), followed=rest)

        self.store.update_purchase(settled.id, finish)
        return own

    def _alert(
        self,
        purchase: Purchase,
        txn: JournalTransaction,
        what: str,
        details: dict[str, Any],
        hops: list[Hop],
    ) -> None:
        moved = -txn.user_entry(purchase.user_id).amount
        debtor = purchase.buyer_id if _debtor(txn) else purchase.user_id
        debt = self.store.get_account(debtor).debt
        chain = describe(hops)
        followed = f"; {sum(h.taken for h in hops)} more from {chain}" if chain else ""
        owed = f"{debtor} owes {debt}" if debtor != purchase.user_id else f"debt now {debt}"
        self.security.alert(
            f"{what}_clawback",
            "warning",
            user_id=purchase.user_id,
            purchase_id=purchase.id,
            reason=f"{what}: {moved} tokens taken back{followed}, {owed}",
            **{k: v for k, v in details.items() if isinstance(v, str)},
            **({"chain": chain} if chain else {}),
        )
        if debt:
            # Its own line, so that a log-based metric counts accounts pushed into debt.
            log.warning(
                "%s clawback for purchase %s left the account owing %d tokens",
                what,
                purchase.id,
                debt,
                extra={
                    "purchase_id": purchase.id,
                    "user_id": debtor,
                    "outcome": CLAWBACK_INTO_DEBT,
                },
            )

    def _repay_from_restore(self, settled: Purchase) -> None:
        """Repay debt from tokens given back, once per restore.

        Each movement adds a move, so the count names it for the retry too, which
        finds the purchase already settled (``repay_move``).
        """
        restore = f"restore:{settled.id}:{settled.clawback_moves}"
        self.ledger.settle_debt(settled.user_id, restore)

    def _move(self, before: Purchase, known: Purchase, change: str) -> Operation | None:
        """The ledger operation that brings the tokens taken back to ``target(known)``.

        Keyed on the purchase and the change, which happens once: records only move
        forward, so a redelivery learns nothing and moves nothing.
        """
        refund, dispute = target(known)
        delta = refund + dispute - taken(before)
        if change and len(change) > MAX_CHANGE_NAME:
            change = hashlib.sha256(change.encode()).hexdigest()
        key = f"{before.id}:{change}"
        refs = {"purchase_id": before.id}
        reason = f"{before.pack_id} pack"
        if delta > 0:
            kind = TxnType.REFUND if refund > before.refunded_tokens else TxnType.DISPUTE
            gift = before.buyer_id != before.user_id
            return validate(
                Operation(
                    OpKind.CLAWBACK,
                    f"clawback:{key}",
                    before.user_id,
                    delta,
                    kind,
                    reason=reason,
                    # A gift's shortfall is the payer's debt, never the recipient's.
                    counterparty_id=before.buyer_id if gift else None,
                    refs=refs,
                )
            )
        if delta < 0:
            given = (
                TxnType.REFUND_REVERSAL
                if refund < before.refunded_tokens
                else TxnType.DISPUTE_REVERSAL
            )
            return validate(
                Operation(
                    OpKind.CREDIT,
                    f"restore:{key}",
                    before.user_id,
                    -delta,
                    given,
                    reason=reason,
                    refs=refs,
                )
            )
        return None

    def _now(self) -> str:
        return format_time(self.clock())


def _left_debt(txn: JournalTransaction | None, user_id: str) -> bool:
    """A give-back to an account in debt: the tokens given back repay it next."""
    if txn is None or txn.kind is not OpKind.CREDIT:
        return False
    return bool(txn.user_entry(user_id).debt_after)


def _debtor(txn: JournalTransaction) -> bool:
    """Whether the clawback's debt went to a counterparty (a gift's payer)."""
    return sum(1 for e in txn.entries if e.user_id is not None) > 1


def _to_follow(txn: JournalTransaction | None) -> list[str]:
    """A clawback that left its own account a shortfall: followed to whom it sent tokens."""
    if txn is None or txn.kind is not OpKind.CLAWBACK or _debtor(txn):
        return []
    return [txn.id] if "shortfall" in txn.refs else []


def _deferred_item(obj: Mapping[str, Any]) -> str:
    """What a kept event is about: the charge's total, or one status of one refund or dispute."""
    if obj.get("object") == "charge":
        return "charge"
    return f"{obj.get('id')}:{obj.get('status')}:{obj.get('funds') or ''}"
