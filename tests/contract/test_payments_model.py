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
  order, out of order or repeated: refunds take back
  ``110 * max_refunded // 999`` tokens in total, less what a dispute took;
- a dispute (of the whole charge, or of what the refunds left of it) takes
  back its share not already refunded, a won dispute gives it back (and
  repays debt first), a lost one keeps it. Refunds that arrive while a
  dispute is open or after it closed follow the same two formulas, as
  ``services/payments/clawbacks.py`` states them;
- every clawback takes what the balance holds and records the rest as debt;
  a user in debt cannot spend or send.

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
from tests.support.purchases import charge_event, dispute_event, event, session_object

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
    max_refunded: int = 0
    refunded_tokens: int = 0
    disputed_tokens: int = 0
    dispute_status: str | None = None  # open | won | lost
    dispute_amount: int = 0

    def target(self) -> tuple[int, int]:
        """(refund tokens, dispute tokens) the known refunds and dispute call for."""
        refund = share(self.max_refunded)
        if self.dispute_status not in ("open", "lost"):
            return refund, 0
        return refund, share(self.max_refunded + self.dispute_amount) - refund


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
        self.system_start = self.ledger.system_balances()

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

    def model_clawback(self, user: int, amount: int, txn_type: TxnType) -> None:
        """Take what the balance holds; the rest becomes debt."""
        taken = min(self.balance[user], amount)
        self.balance[user] -= taken
        self.debt[user] += amount - taken
        self.system[COUNTER_ACCOUNT[txn_type]] += taken
        self.entry(user, txn_type, -taken)

    def credit_purchase(self, p: PurchaseModel) -> None:
        assert p.state is not PurchaseState.PAID
        p.state = PurchaseState.PAID
        self.model_credit(p.user, TOKENS, TxnType.PURCHASE, None if p.user == p.buyer else p.buyer)

    def credited(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.state is PurchaseState.PAID]

    def awaiting(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.state is PurchaseState.AWAITING_PAYMENT]

    def undisputed(self) -> list[PurchaseModel]:
        return [p for p in self.credited() if p.dispute_status is None]

    def open_disputes(self) -> list[PurchaseModel]:
        return [p for p in self.purchases if p.dispute_status == "open"]

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

    @rule(sender=USER_INDEXES, step=st.integers(0, USERS - 1), amount=AMOUNTS, fit=st.booleans())
    def transfer(self, sender: int, step: int, amount: int, fit: bool) -> None:
        amount = self.fitted(amount, self.balance[sender]) if fit else amount
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

    # -- refunds -------------------------------------------------------------------

    def model_sync(self, p: PurchaseModel) -> int:
        """Bring the tokens taken back to the purchase's target; the change in tokens taken."""
        refund, dispute = p.target()
        delta = refund + dispute - p.refunded_tokens - p.disputed_tokens
        if delta > 0:
            kind = TxnType.REFUND if refund > p.refunded_tokens else TxnType.DISPUTE
            self.model_clawback(p.user, delta, kind)
        elif delta < 0:
            self.model_credit(p.user, -delta, TxnType.DISPUTE_REVERSAL, None)
        p.refunded_tokens, p.disputed_tokens = refund, dispute
        return delta

    def model_refund(self, p: PurchaseModel, refunded: int) -> bool:
        """Apply one delivered cumulative refund; True when tokens were taken back."""
        if refunded <= p.max_refunded:
            return False  # repeated or older: already applied
        p.max_refunded = refunded
        return self.model_sync(p) > 0

    def deliver_refund(self, p: PurchaseModel, refunded: int) -> None:
        outcome = self.fulfilment.handle_event(charge_event(p.payment_intent, PRICE, refunded))
        clawed = self.model_refund(p, refunded)
        assert outcome == ("refund_clawed_back" if clawed else "refund_unchanged"), (
            outcome,
            refunded,
            p,
        )

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

    # -- disputes ------------------------------------------------------------------

    @precondition(lambda self: bool(self.undisputed()))
    @rule(pick=PICKS, remainder=st.booleans(), twice=st.booleans())
    def dispute_created(self, pick: int, remainder: bool, twice: bool) -> None:
        """A dispute of the whole charge, or of what the refunds so far left of it."""
        candidates = self.undisputed()
        p = candidates[pick % len(candidates)]
        amount = PRICE - p.max_refunded if remainder else PRICE
        p.dispute_status = "open"
        p.dispute_amount = amount
        expected = "dispute_clawed_back" if self.model_sync(p) > 0 else "dispute_unchanged"
        for _ in range(2 if twice else 1):
            created = dispute_event(
                "charge.dispute.created", p.payment_intent, amount, "needs_response"
            )
            assert self.fulfilment.handle_event(created) == expected
            expected = "dispute_unchanged"

    @precondition(lambda self: bool(self.open_disputes()))
    @rule(pick=PICKS, won=st.booleans(), twice=st.booleans())
    def dispute_closed(self, pick: int, won: bool, twice: bool) -> None:
        candidates = self.open_disputes()
        p = candidates[pick % len(candidates)]
        status = "won" if won else "lost"
        p.dispute_status = status
        self.model_sync(p)
        for _ in range(2 if twice else 1):
            closed = dispute_event("charge.dispute.closed", p.payment_intent, PRICE, status)
            assert self.fulfilment.handle_event(closed) == f"dispute_{status}"

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

        system = self.ledger.system_balances()
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
                p.max_refunded,
                p.refunded_tokens,
                p.disputed_tokens,
                p.dispute_status,
            )
            assert actual == expected, f"{p.id}: stored {actual} != model {expected}"
            assert stored.refunded_tokens + stored.disputed_tokens <= TOKENS, stored
            assert (stored.credit_txn_id is not None) == (p.state is PurchaseState.PAID)
            assert stored.user_id == self.users[p.user]
            assert stored.gift_from == (None if p.user == p.buyer else self.users[p.buyer])


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
