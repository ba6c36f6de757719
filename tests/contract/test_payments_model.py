"""Model-based test of the payments path: purchases, refunds and disputes on the ledger.

A Hypothesis state machine drives the REAL services in process on each store:
Stripe-shaped events (built from Stripe's fixtures) go to
``Fulfilment.handle_event`` exactly as the webhook hands them over after the
signature check, and ``TokenLedger`` spends and sends tokens between three
users. A small reference model predicts every balance, debt, history entry,
system total and purchase record:

- a purchase (for oneself or a gift) is credited exactly once, whatever
  duplicates of ``checkout.session.completed`` or
  ``checkout.session.async_payment_succeeded`` arrive, and a bank debit is
  credited only when it clears; the credit repays the recipient's debt first;
- ``charge.refunded`` carries the cumulative amount refunded, delivered in
  order, out of order or repeated; refunds known by id (``refund.created`` /
  ``updated`` / ``failed``, ``charge.refund.updated``) move through their
  statuses in any order, an older status arriving late changes nothing, and
  a failed or canceled refund gives its tokens back for good. What the
  refunds take is ``active + max(0, charge_refunded - known)`` of the price
  (``services/payments/refund_records.py``);
- disputes by id, several per charge, through every status of the pinned API
  version in any order, with ``funds_withdrawn`` / ``funds_reinstated``: an
  inquiry takes nothing, needs_response to an appeal takes the disputed share,
  won (also after an appeal) restores it, lost keeps it
  (``services/payments/disputes.py``). Refunds and disputes together take
  ``110 * min(999, refunded + disputed) // 999`` tokens, the refunds' share first,
  as ``services/payments/clawbacks.py`` states it; tokens given back repay debt first;
- every clawback takes what the balance holds; what it does not hold is
  followed to whom the buyer tipped since the purchase's credit, most recent
  first, as far as each still holds it, onwards to whom they tipped after
  (``services/payments/clawback_chain.py``), and only the rest is the buyer's
  debt; a gift's shortfall is the payer's debt; a user in debt cannot spend or send.

After every step the invariants are checked through public reads only:
conservation against the system totals at the start of the example, each
history (walked in cursor pages of 4) sums to its balance and equals the
model's, balances and debts equal the model's, status is "debt" iff there is
debt, no balance is negative, and each purchase record matches the model.

Each example works in its own namespace (a random prefix on user ids,
purchase ids and Stripe ids), as in ``test_ledger_model.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from config.catalog import load_catalog
from services.errors import AccountInDebt, DomainError, InsufficientBalance, SelfTransfer
from services.ledger.model import COUNTER_ACCOUNT, Entry, SystemAccount, TxnType, format_time
from services.payments.checkout import purchase_id_for
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState, User
from services.security import SecurityService
from services.store.port import Store
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from tests.support.after_payment import dispute_by_id, refund_event
from tests.support.ledger_reads import system_balances
from tests.support.purchases import charge_event, event, session_object

StoreFactory = Callable[[], Store]

USERS = 3
PAGE = 4  # small, so that the cursor path is walked at every check
PACK_ID = "popular"
TOKENS = 110
PRICE = 999
AMOUNTS = st.integers(min_value=1, max_value=120)
USER_INDEXES = st.integers(min_value=0, max_value=USERS - 1)
PICKS = st.integers(min_value=0, max_value=63)  # folded onto the purchases that qualify
REFUND_STEPS = st.integers(min_value=1, max_value=600)

# How a buy is delivered:
#   card            one checkout.session.completed (paid)
#   card_twice      the same event twice (Stripe retries)
#   card_and_async  completed (paid), then async_payment_succeeded for the same session
#   bank_debit      completed (unpaid): awaiting payment until `bank_debit_clears`
DELIVERIES = st.sampled_from(["card", "card_twice", "card_and_async", "bank_debit"])

# Fields of a history entry that the model predicts.
EntryShape = tuple[TxnType, int, int | None, int | None]


def share(amount: int) -> int:
    """Tokens of the popular pack in proportion to ``amount`` of its price."""
    return TOKENS * min(amount, PRICE) // PRICE


@dataclass(frozen=True)
class Tip:
    step: int
    sender: int
    recipient: int
    amount: int


MAX_DEPTH = 3  # as clawback_chain.MAX_DEPTH


@dataclass
class PurchaseModel:
    """What the model expects one purchase record to hold."""

    id: str
    session_id: str
    payment_intent: str
    user: int  # credited
    buyer: int  # pays; differs from ``user`` for a gift
    state: PurchaseState
    issued: list[int] = field(default_factory=list)  # cumulative refunds Stripe reported
    max_refunded: int = 0  # the largest of them
    refunds: dict[str, list[Any]] = field(default_factory=dict)  # id -> [amount, status]
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> record
    refunded_tokens: int = 0
    disputed_tokens: int = 0
    dispute_status: str | None = None  # Stripe's status of the dispute that changed last
    credited_at: int = 0  # the model's step of the credit, for the transfers since

    def refunded(self) -> int:
        active = sum(int(a) for a, status in self.refunds.values() if status in REFUND_ACTIVE)
        known = sum(int(a) for a, _ in self.refunds.values())
        return min(PRICE, active + max(0, self.max_refunded - known))

    def disputed(self) -> int:
        return sum(int(d["amount"]) for d in self.disputes.values() if dispute_takes(d))

    def target(self) -> tuple[int, int]:
        """(refund tokens, dispute tokens) the known refunds and disputes call for."""
        refund = share(self.refunded())
        return refund, share(self.refunded() + self.disputed()) - refund


REFUND_RANK = {"requires_action": 0, "pending": 1, "succeeded": 2, "failed": 3, "canceled": 3}
REFUND_ACTIVE = ("requires_action", "pending", "succeeded")
# Paths a refund takes (Stripe's refund lifecycle); events may deliver them in any order.
REFUND_PATHS = st.sampled_from(
    [
        ["pending", "succeeded"],
        ["pending", "failed"],
        ["pending", "succeeded", "failed"],
        ["requires_action", "pending", "succeeded"],
        ["requires_action", "canceled"],
        ["pending", "canceled"],
        ["succeeded"],
    ]
)
REFUND_KINDS = st.sampled_from(
    ["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"]
)
DISPUTE_RANK = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "needs_response": 2,
    "under_review": 3,
    "lost": 4,
    "appeal_needs_response": 5,
    "appeal_under_review": 6,
    "won": 9,
    "warning_closed": 9,
    "prevented": 9,
}
DISPUTE_TAKES = (
    "needs_response",
    "under_review",
    "lost",
    "appeal_needs_response",
    "appeal_under_review",
)
DISPUTE_STATUSES = st.sampled_from(sorted(DISPUTE_RANK))
DISPUTE_KINDS = st.sampled_from(
    [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ]
)
FUNDS = {
    "charge.dispute.funds_withdrawn": "withdrawn",
    "charge.dispute.funds_reinstated": "reinstated",
}


def dispute_takes(d: dict[str, Any]) -> bool:
    if d["funds"] == "reinstated" or d["status"] in ("won", "prevented"):
        return False
    return d["status"] in DISPUTE_TAKES or d["funds"] == "withdrawn"


def dispute_learns(d: dict[str, Any], status: str, funds: str | None) -> bool:
    """The dispute's record after one event; True when it changed."""
    rank = DISPUTE_RANK[status]
    if status == "lost" and 4 < d["rank"] < 7:
        rank = 7  # the decision of an appeal
    changed = False
    if rank > d["rank"] and d["rank"] < 9:
        d["status"], d["rank"], changed = status, rank, True
    if funds is not None and d["funds"] not in ("reinstated", funds):
        d["funds"], changed = funds, True
    return changed


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.ledger = TokenLedger(store)
        catalog = load_catalog(None)
        pack = catalog.get(PACK_ID)
        assert pack is not None
        assert (pack.tokens, pack.price_cents, pack.currency) == (TOKENS, PRICE, "usd")
        # No payments gateway: handling a verified event never calls back to Stripe.
        self.fulfilment = Fulfilment(store, self.ledger, catalog, SecurityService(store))
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = 0
        self.users = [f"{self.prefix}-u{i}" for i in range(USERS)]
        # The reference model.
        self.balance = dict.fromkeys(range(USERS), 0)
        self.debt = dict.fromkeys(range(USERS), 0)
        self.entries: dict[int, list[EntryShape]] = {i: [] for i in range(USERS)}
        self.system = dict.fromkeys(SystemAccount, 0)
        self.purchases: list[PurchaseModel] = []
        self.pending_amounts: dict[str, int] = {}  # refund id -> amount, before it is known
        self.tips: list[Tip] = []
        self.step = 0  # orders credits and tips, as their times do
        self.system_start = system_balances(self.ledger)

    # -- helpers -------------------------------------------------------------

    def new_name(self, what: str) -> str:
        self.counter += 1
        return f"{self.prefix}{what}{self.counter}"

    def deliver(self, event_type: str, obj: dict[str, Any]) -> str:
        return self.fulfilment.handle_event(event(event_type, obj))

    def session(self, p: PurchaseModel, payment_status: str = "paid") -> dict[str, Any]:
        return session_object(
            p.session_id,
            p.id,
            self.users[p.user],
            payment_intent=p.payment_intent,
            payment_status=payment_status,
        )

    def entry(self, user: int, txn_type: TxnType, amount: int) -> None:
        self.entries[user].append((txn_type, amount, self.balance[user], self.debt[user]))

    def model_credit(self, user: int, amount: int, txn_type: TxnType, payer: int | None) -> None:
        """A credit, then (as ``settle_debt`` does) the debt the new balance covers."""
        self.balance[user] += amount
        self.system[COUNTER_ACCOUNT[txn_type]] -= amount
        self.entry(user, txn_type, amount)
        if payer is not None:  # a gift shows in the payer's history, no tokens moving
            self.entry(payer, txn_type, 0)
        repaid = min(self.balance[user], self.debt[user])
        if repaid > 0:
            self.balance[user] -= repaid
            self.debt[user] -= repaid
            self.system[COUNTER_ACCOUNT[TxnType.DEBT_REPAYMENT]] += repaid
            self.entry(user, TxnType.DEBT_REPAYMENT, -repaid)

    def model_clawback(self, p: PurchaseModel, amount: int, txn_type: TxnType) -> None:
        """Take what the balance holds; the rest is followed, and what is left becomes debt
        (a gift's: the payer's)."""
        user = p.user
        taken = min(self.balance[user], amount)
        self.balance[user] -= taken
        self.system[COUNTER_ACCOUNT[txn_type]] += taken
        if p.buyer != user:
            self.entry(user, txn_type, -taken)
            self.debt[p.buyer] += amount - taken
            self.entry(p.buyer, txn_type, 0)
            return
        self.debt[user] += amount - taken
        self.entry(user, txn_type, -taken)
        if amount > taken:
            self.model_follow(user, user, p.credited_at, amount - taken, 1, set())

    def model_follow(
        self, buyer: int, holder: int, since: int, owed: int, depth: int, seen: set[int]
    ) -> int:
        """The chain of hops: ``holder``'s tips since ``since``, newest first."""
        total = 0
        for tip in reversed(self.tips):
            if total >= owed:
                break
            if tip.sender != holder or tip.step < since:
                continue
            if tip.step in seen or tip.recipient == buyer:
                continue
            seen.add(tip.step)
            want = min(tip.amount, owed - total)
            taken = 0
            if min(self.balance[tip.recipient], self.debt[buyer]) > 0:
                taken = min(self.balance[tip.recipient], want, self.debt[buyer])
                self.balance[tip.recipient] -= taken
                self.debt[buyer] -= taken
                self.system[COUNTER_ACCOUNT[TxnType.CLAWBACK_HOP]] += taken
                self.entry(tip.recipient, TxnType.CLAWBACK_HOP, -taken)
                self.entry(buyer, TxnType.CLAWBACK_HOP, 0)
            if taken < want and depth < MAX_DEPTH:
                rest = want - taken
                taken += self.model_follow(buyer, tip.recipient, tip.step, rest, depth + 1, seen)
            total += taken
        return total

    def credit_purchase(self, p: PurchaseModel) -> None:
        assert p.state is not PurchaseState.PAID
        p.state = PurchaseState.PAID
        self.step += 1
        p.credited_at = self.step
        self.model_credit(p.user, TOKENS, TxnType.PURCHASE, None if p.user == p.buyer else p.buyer)

    def credited(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.state is PurchaseState.PAID]

    def awaiting(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.state is PurchaseState.AWAITING_PAYMENT]

    def refunded_once(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.issued]

    @staticmethod
    def fitted(amount: int, limit: int) -> int:
        """``amount`` folded into 1..limit: a request the balance can cover."""
        return 1 + (amount - 1) % limit if limit > 0 else amount

    def expected_refusal(self, user: int, amount: int) -> type[DomainError] | None:
        if self.debt[user] > 0:
            return AccountInDebt
        if self.balance[user] < amount:
            return InsufficientBalance
        return None

    # -- users ---------------------------------------------------------------

    @initialize()
    def open_accounts(self) -> None:
        now = self.ledger.clock()
        for user in self.users:
            stored = self.store.ensure_user(User(id=user, created_at=format_time(now)), now)
            assert stored.id == user
            account = self.ledger.balance(user)
            assert (account.balance, account.debt, account.seq) == (0, 0, 0)

    # -- purchases -------------------------------------------------------------

    @rule(user=USER_INDEXES, gift_from=st.none() | USER_INDEXES, delivery=DELIVERIES)
    def buy(self, user: int, gift_from: int | None, delivery: str) -> None:
        buyer = user if gift_from is None or gift_from == user else gift_from
        session_id = "cs_test_" + self.new_name("s")
        purchase_id = purchase_id_for(self.users[buyer], session_id)
        now = self.ledger.clock()
        stamp = format_time(now)
        record = Purchase(
            id=purchase_id,
            buyer_id=self.users[buyer],
            user_id=self.users[user],
            gift_from=None if buyer == user else self.users[buyer],
            pack_id=PACK_ID,
            tokens=TOKENS,
            amount=PRICE,
            currency="usd",
            state=PurchaseState.PENDING,
            created_at=stamp,
            updated_at=stamp,
            session_id=session_id,
            payment_intent_id="pi_" + self.new_name("p"),
        )
        stored = self.store.start_purchase(record, None, now)
        assert stored == record
        assert record.payment_intent_id is not None
        p = PurchaseModel(
            record.id, session_id, record.payment_intent_id, user, buyer, PurchaseState.PENDING
        )
        self.purchases.append(p)

        if delivery == "bank_debit":
            outcome = self.deliver("checkout.session.completed", self.session(p, "unpaid"))
            assert outcome == "awaiting_payment"
            p.state = PurchaseState.AWAITING_PAYMENT
            return
        outcome = self.deliver("checkout.session.completed", self.session(p))
        assert outcome == "paid"
        self.credit_purchase(p)
        if delivery == "card_twice":
            assert self.deliver("checkout.session.completed", self.session(p)) == "paid"
        elif delivery == "card_and_async":
            outcome = self.deliver("checkout.session.async_payment_succeeded", self.session(p))
            assert outcome == "paid"

    @precondition(lambda self: bool(self.awaiting()))
    @rule(pick=PICKS, late_completed=st.booleans())
    def bank_debit_clears(self, pick: int, late_completed: bool) -> None:
        candidates = self.awaiting()
        p = candidates[pick % len(candidates)]
        outcome = self.deliver("checkout.session.async_payment_succeeded", self.session(p))
        assert outcome == "paid"
        self.credit_purchase(p)
        if late_completed:  # the unpaid `completed` again, late: it changes nothing now
            outcome = self.deliver("checkout.session.completed", self.session(p, "unpaid"))
            assert outcome == "paid"

    # -- spending ----------------------------------------------------------------

    @rule(user=USER_INDEXES, amount=AMOUNTS, how=st.sampled_from(["as drawn", "fitted", "all"]))
    def spend(self, user: int, amount: int, how: str) -> None:
        """``fitted`` and ``all`` spend what the balance holds, so clawbacks leave debt."""
        if how == "fitted":
            amount = self.fitted(amount, self.balance[user])
        elif how == "all":
            amount = self.balance[user] or amount
        key = self.new_name("-spend")
        refusal = self.expected_refusal(user, amount)
        if refusal is not None:
            with pytest.raises(DomainError) as caught:
                self.ledger.spend(self.users[user], amount, key=key)
            assert type(caught.value) is refusal, caught.value
            return
        self.ledger.spend(self.users[user], amount, key=key)
        self.balance[user] -= amount
        self.system[SystemAccount.SPEND] += amount
        self.entry(user, TxnType.SPEND, -amount)

    @rule(
        sender=USER_INDEXES,
        step=st.integers(0, USERS - 1),
        amount=AMOUNTS,
        how=st.sampled_from(["as drawn", "fitted", "all"]),
    )
    def transfer(self, sender: int, step: int, amount: int, how: str) -> None:
        """A tip; ``all`` tips the whole balance away, so that clawbacks follow it."""
        if how == "fitted":
            amount = self.fitted(amount, self.balance[sender])
        elif how == "all":
            amount = self.balance[sender] or amount
        recipient = (sender + step) % USERS
        key = self.new_name("-send")
        refusal = SelfTransfer if recipient == sender else self.expected_refusal(sender, amount)
        if refusal is not None:
            with pytest.raises(DomainError) as caught:
                self.ledger.transfer(self.users[sender], self.users[recipient], amount, key=key)
            assert type(caught.value) is refusal, caught.value
            return
        self.ledger.transfer(self.users[sender], self.users[recipient], amount, key=key)
        self.balance[sender] -= amount
        self.entry(sender, TxnType.TRANSFER, -amount)
        self.balance[recipient] += amount
        self.entry(recipient, TxnType.TRANSFER, amount)
        self.step += 1
        self.tips.append(Tip(self.step, sender, recipient, amount))

    # -- refunds -------------------------------------------------------------------

    def model_sync(self, p: PurchaseModel) -> int:
        """Bring the tokens taken back to the purchase's target; the change in tokens taken."""
        refund, dispute = p.target()
        delta = refund + dispute - p.refunded_tokens - p.disputed_tokens
        if delta > 0:
            kind = TxnType.REFUND if refund > p.refunded_tokens else TxnType.DISPUTE
            self.model_clawback(p, delta, kind)
        elif delta < 0:
            kind = (
                TxnType.REFUND_REVERSAL if refund < p.refunded_tokens else TxnType.DISPUTE_REVERSAL
            )
            self.model_credit(p.user, -delta, kind, None)
        p.refunded_tokens, p.disputed_tokens = refund, dispute
        return delta

    @staticmethod
    def outcome(what: str, changed: bool, delta: int) -> str:
        if not changed or delta == 0:
            return f"{what}_unchanged"
        return f"{what}_clawed_back" if delta > 0 else f"{what}_restored"

    def deliver_refund(self, p: PurchaseModel, refunded: int) -> None:
        outcome = self.fulfilment.handle_event(charge_event(p.payment_intent, PRICE, refunded))
        changed = refunded > p.max_refunded
        p.max_refunded = max(p.max_refunded, refunded)
        delta = self.model_sync(p)
        assert outcome == self.outcome("refund", changed, delta), (outcome, refunded, p)

    @precondition(lambda self: bool(self.credited()))
    @rule(
        pick=PICKS,
        steps=st.lists(REFUND_STEPS, min_size=1, max_size=3),
        order=st.sampled_from(["in_order", "reversed", "last_first"]),
    )
    def refund(self, pick: int, steps: list[int], order: str) -> None:
        """Stripe reports one or more further refunds; the events may arrive out of order."""
        candidates = self.credited()
        p = candidates[pick % len(candidates)]
        last = p.issued[-1] if p.issued else 0
        fresh: list[int] = []
        for step in steps:
            last = min(PRICE, last + step)
            fresh.append(last)
        p.issued.extend(fresh)
        if order == "reversed":
            fresh.reverse()
        elif order == "last_first":
            fresh = fresh[-1:] + fresh[:-1]
        for refunded in fresh:
            self.deliver_refund(p, refunded)

    @precondition(lambda self: bool(self.refunded_once()))
    @rule(pick=PICKS, which=st.integers(0, 7))
    def refund_redelivered(self, pick: int, which: int) -> None:
        """An old `charge.refunded` again: a retry, or one overtaken by a later refund."""
        candidates = self.refunded_once()
        p = candidates[pick % len(candidates)]
        self.deliver_refund(p, p.issued[which % len(p.issued)])

    def deliver_refund_status(
        self, p: PurchaseModel, refund_id: str, kind: str, status: str
    ) -> None:
        amount = p.refunds[refund_id][0] if refund_id in p.refunds else 0
        obj = refund_event(kind, p.payment_intent, refund_id, amount, status)
        outcome = self.fulfilment.handle_event(obj)
        known = p.refunds.get(refund_id)
        changed = known is None or REFUND_RANK[status] > REFUND_RANK[known[1]]
        if changed:
            p.refunds[refund_id] = [amount, status]
        delta = self.model_sync(p)
        assert outcome == self.outcome("refund", changed, delta), (outcome, status, p)

    @precondition(lambda self: bool(self.credited()))
    @rule(
        pick=PICKS,
        amount=st.integers(1, PRICE),
        path=REFUND_PATHS,
        order=st.permutations(range(3)),
        kinds=st.lists(REFUND_KINDS, min_size=3, max_size=3),
        with_charge=st.booleans(),
    )
    def refund_by_id(
        self,
        pick: int,
        amount: int,
        path: list[str],
        order: list[int],
        kinds: list[str],
        with_charge: bool,
    ) -> None:
        """A refund known by id moves through its statuses; its events come in any order."""
        candidates = self.credited()
        p = candidates[pick % len(candidates)]
        refund_id = "re_" + self.new_name("r")
        self.pending_amounts[refund_id] = amount
        for index in [i for i in order if i < len(path)]:
            self.deliver_refund_status_new(p, refund_id, kinds[index], path[index])
        if with_charge:  # the charge's total then, as charge.refunded reports it
            self.deliver_refund(p, min(PRICE, p.refunded()))

    def deliver_refund_status_new(
        self, p: PurchaseModel, refund_id: str, kind: str, status: str
    ) -> None:
        if refund_id not in p.refunds:
            amount = self.pending_amounts[refund_id]
            obj = refund_event(kind, p.payment_intent, refund_id, amount, status)
            outcome = self.fulfilment.handle_event(obj)
            p.refunds[refund_id] = [amount, status]
            delta = self.model_sync(p)
            assert outcome == self.outcome("refund", True, delta), (outcome, status, p)
            return
        self.deliver_refund_status(p, refund_id, kind, status)

    @precondition(lambda self: any(p.refunds for p in self.purchases))
    @rule(pick=PICKS, status=st.sampled_from(sorted(REFUND_RANK)), kind=REFUND_KINDS)
    def refund_status_again(self, pick: int, status: str, kind: str) -> None:
        """A later status, a stale one or a repeat, for a refund already known."""
        candidates = [p for p in self.purchases if p.refunds]
        p = candidates[pick % len(candidates)]
        refund_id = sorted(p.refunds)[pick % len(p.refunds)]
        self.deliver_refund_status(p, refund_id, kind, status)

    # -- disputes ------------------------------------------------------------------

    @precondition(lambda self: bool(self.credited()))
    @rule(
        pick=PICKS,
        fresh=st.booleans(),
        remainder=st.booleans(),
        status=DISPUTE_STATUSES,
        kind=DISPUTE_KINDS,
        twice=st.booleans(),
    )
    def dispute(
        self, pick: int, fresh: bool, remainder: bool, status: str, kind: str, twice: bool
    ) -> None:
        """Any dispute event, of a new dispute (the whole charge, or what refunds left of
        it) or of one already known, in any status: Stripe's order is not promised."""
        candidates = self.credited()
        p = candidates[pick % len(candidates)]
        if fresh or not p.disputes:
            dispute_id = "dp_" + self.new_name("d")
            amount = max(1, PRICE - p.refunded()) if remainder else PRICE
            p.disputes[dispute_id] = {"amount": amount, "status": "", "rank": -1, "funds": None}
        else:
            dispute_id = sorted(p.disputes)[pick % len(p.disputes)]
        record = p.disputes[dispute_id]
        changed = dispute_learns(record, status, FUNDS.get(kind))
        if changed:
            p.dispute_status = record["status"] or p.dispute_status
        delta = self.model_sync(p)
        expected = self.outcome("dispute", changed, delta)
        if kind == "charge.dispute.closed":
            expected = f"dispute_{record['status'] or 'unchanged'}"
        for _ in range(2 if twice else 1):
            obj = dispute_by_id(kind, p.payment_intent, dispute_id, record["amount"], status)
            assert self.fulfilment.handle_event(obj) == expected, (expected, status, kind, p)
            if kind != "charge.dispute.closed":
                expected = "dispute_unchanged"

    # -- invariants ------------------------------------------------------------------

    def history(self, user: str) -> list[Entry]:
        entries: list[Entry] = []
        cursor: str | None = None
        while True:
            page = self.ledger.history(user, limit=PAGE, cursor=cursor)
            assert len(page.entries) <= PAGE
            entries.extend(page.entries)
            cursor = page.next_cursor
            if cursor is None:
                return entries

    @invariant()
    def accounts_match_model(self) -> None:
        users_total = 0
        for index, user in enumerate(self.users):
            account = self.ledger.balance(user)
            assert account.balance >= 0, account
            assert account.debt >= 0, account
            assert (account.balance, account.debt) == (self.balance[index], self.debt[index]), (
                f"{user}: ledger {account.balance}/{account.debt},"
                f" model {self.balance[index]}/{self.debt[index]}"
            )
            assert account.status == ("debt" if self.debt[index] > 0 else "active"), account
            assert account.seq == len(self.entries[index]), account
            users_total += account.balance

            history = self.history(user)
            assert sum(entry.amount for entry in history) == account.balance
            assert [e.seq for e in history] == list(range(len(history), 0, -1))
            actual = [(e.type, e.amount, e.balance_after, e.debt_after) for e in history]
            assert actual == self.entries[index][::-1], f"{user}: history differs from model"

        system = system_balances(self.ledger)
        change = {a: system[a] - self.system_start[a] for a in SystemAccount}
        assert users_total + sum(change.values()) == 0, (users_total, change)
        assert change == self.system, (change, self.system)

    @invariant()
    def purchases_match_model(self) -> None:
        for p in self.purchases:
            stored = self.store.get_purchase(p.id)
            assert stored is not None, p.id
            actual = (
                stored.state,
                stored.refunded_amount,
                stored.refunded_tokens,
                stored.disputed_tokens,
                stored.dispute_status,
            )
            expected = (
                p.state,
                p.refunded(),
                p.refunded_tokens,
                p.disputed_tokens,
                p.dispute_status,
            )
            assert actual == expected, f"{p.id}: stored {actual} != model {expected}"
            assert stored.refunded_tokens + stored.disputed_tokens <= TOKENS, stored
            assert (stored.credit_txn_id is not None) == (p.state is PurchaseState.PAID)
            assert stored.user_id == self.users[p.user]
            assert stored.gift_from == (None if p.user == p.buyer else self.users[p.buyer])
            assert stored.followed == [], stored  # every chain walked to its end


COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
FAST = settings(max_examples=150, stateful_step_count=30, **COMMON)
SLOW = settings(max_examples=20, stateful_step_count=15, **COMMON)


def test_payments_agree_with_model(store_factory: StoreFactory) -> None:
    store = store_factory()
    chosen = FAST if isinstance(store, SqliteStore) else SLOW

    class Machine(PaymentsMachine):
        def __init__(self) -> None:
            super().__init__(store)

    run_state_machine_as_test(Machine, settings=chosen)
