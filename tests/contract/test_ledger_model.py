"""Model-based test: random operation sequences against a tiny reference model.

A Hypothesis state machine drives the real ``TokenLedger`` on each store with
credits, spends, transfers, clawbacks, debt repayments and idempotent
replays. A plain-dict model predicts every outcome (the journal transaction,
or the exact domain error) and, after every step, the invariants are checked
through the ledger's public reads:

1. conservation: user balances plus system totals do not change;
2. each history sums to its balance and its newest entry carries the balance;
3. no balance is negative, and balances and debts equal the model's;
4. every journal transaction returned balances to zero.

Hypothesis runs many examples against one store, so each example works in its
own namespace (a random prefix on user ids and keys) and the conservation
check compares system totals with their values at the start of the example.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from services.errors import (
    AccountInDebt,
    DebtRepaymentTooLarge,
    DomainError,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    ReserveExceeded,
)
from services.ledger.model import (
    COUNTER_ACCOUNT,
    Entry,
    JournalTransaction,
    OpKind,
    SystemAccount,
    TxnType,
    format_time,
    user_account,
    utc_now,
)
from services.store.port import LedgerStore
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from services.usage import UsageMeter
from tests.support.ledger_reads import system_balances, transaction_by_key

StoreFactory = Callable[[], LedgerStore]

USERS = 3
PAGE = 4  # small, so that the cursor path is walked at every check
AMOUNTS = st.integers(min_value=1, max_value=60)
USER_INDEXES = st.integers(min_value=0, max_value=USERS - 1)

# The tuple of fields compared for each entry: everything except the
# store-assigned transaction id and timestamp (checked separately).
EntryShape = tuple[str, int, TxnType, str | None, int | None, int | None, int | None, str | None]


def shape_of(e: Entry) -> EntryShape:
    return (
        e.account,
        e.amount,
        e.type,
        e.user_id,
        e.seq,
        e.balance_after,
        e.debt_after,
        e.counterparty_id,
    )


@dataclass(frozen=True)
class Request:
    """One ledger call, in terms of the machine's user indexes."""

    kind: OpKind
    user: int
    amount: int
    type: TxnType
    to: int | None = None

    def with_amount(self, amount: int) -> Request:
        return Request(self.kind, self.user, amount, self.type, self.to)


@dataclass(frozen=True)
class Used:
    """What the model remembers about a key that produced a transaction."""

    request: Request
    first: JournalTransaction


class LedgerMachine(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self, store: LedgerStore) -> None:
        super().__init__()
        self.ledger = TokenLedger(store)
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = 0
        self.users = [f"{self.prefix}-u{i}" for i in range(USERS)]
        for user in self.users:
            account = self.ledger.open_account(user)
            assert (account.balance, account.debt, account.seq) == (0, 0, 0)
        # The reference model.
        self.balance = dict.fromkeys(range(USERS), 0)
        self.debt = dict.fromkeys(range(USERS), 0)
        self.holds: dict[int, dict[str, int]] = {i: {} for i in range(USERS)}
        # Usage sessions are holds too (their hold is what is left of the reserve);
        # here, session id -> tokens captured so far.
        self.metered: dict[int, dict[str, int]] = {i: {} for i in range(USERS)}
        self.meter = UsageMeter(self.ledger)
        self.entries: dict[int, list[EntryShape]] = {i: [] for i in range(USERS)}
        self.system = dict.fromkeys(SystemAccount, 0)
        self.used: dict[str, Used] = {}
        self.results: list[JournalTransaction] = []
        self.system_start = system_balances(self.ledger)

    # -- helpers -----------------------------------------------------------

    def new_key(self) -> str:
        self.counter += 1
        return f"{self.prefix}-k{self.counter}"

    def send(self, request: Request, key: str) -> JournalTransaction:
        user = self.users[request.user]
        if request.kind is OpKind.CREDIT:
            return self.ledger.credit(user, request.amount, key=key, type=request.type)
        if request.kind is OpKind.DEBIT:
            return self.ledger.spend(user, request.amount, key=key)
        if request.kind is OpKind.TRANSFER:
            assert request.to is not None
            return self.ledger.transfer(user, self.users[request.to], request.amount, key=key)
        if request.kind is OpKind.CLAWBACK:
            return self.ledger.clawback(user, request.amount, key=key, type=request.type)
        assert request.kind is OpKind.REPAY_DEBT
        return self.ledger.repay_debt(user, request.amount, key=key)

    def expected_error(self, request: Request) -> type[DomainError] | None:
        """The domain error the model predicts for ``request``, or None for success."""
        balance, debt, amount = self.balance[request.user], self.debt[request.user], request.amount
        if request.kind in (OpKind.DEBIT, OpKind.TRANSFER, OpKind.HOLD):
            if debt > 0:
                return AccountInDebt
            if balance - self.held(request.user) < amount:
                return InsufficientBalance
        if request.kind is OpKind.REPAY_DEBT:
            if amount > debt:
                return DebtRepaymentTooLarge
            if balance < amount:
                return InsufficientBalance
        return None

    def held(self, user: int) -> int:
        """Reserved tokens: open holds, never more than the balance (a clawback may shrink it)."""
        return min(self.balance[user], sum(self.holds[user].values()))

    def apply_to_model(self, request: Request) -> list[EntryShape]:
        """Update the model for a successful ``request``; return the expected entries."""
        amount, user, txn_type = request.amount, request.user, request.type
        lines: list[EntryShape] = []

        def user_line(index: int, delta: int, debt_delta: int, other: int | None) -> None:
            self.balance[index] += delta
            self.debt[index] += debt_delta
            shape: EntryShape = (
                user_account(self.users[index]),
                delta,
                txn_type,
                self.users[index],
                len(self.entries[index]) + 1,
                self.balance[index],
                self.debt[index],
                None if other is None else self.users[other],
            )
            self.entries[index].append(shape)
            lines.append(shape)

        def system_line(delta: int) -> None:
            system = COUNTER_ACCOUNT[txn_type]
            self.system[system] += delta
            lines.append((str(system), delta, txn_type, None, None, None, None, None))

        if request.kind is OpKind.CREDIT:
            system_line(-amount)
            user_line(user, amount, 0, None)
        elif request.kind is OpKind.DEBIT:
            user_line(user, -amount, 0, None)
            system_line(amount)
        elif request.kind is OpKind.TRANSFER:
            assert request.to is not None
            user_line(user, -amount, 0, request.to)
            user_line(request.to, amount, 0, user)
        elif request.kind is OpKind.CLAWBACK:
            taken = min(self.balance[user], amount)
            user_line(user, -taken, amount - taken, None)
            system_line(taken)
        else:
            user_line(user, -amount, -amount, None)
            system_line(amount)
        return lines

    def run(self, request: Request) -> list[str]:
        """Send ``request`` under a fresh key and check the outcome against the model."""
        key = self.new_key()
        error = self.expected_error(request)
        if error is not None:
            with pytest.raises(DomainError) as caught:
                self.send(request, key)
            assert type(caught.value) is error, (
                f"{request}: expected {error.__name__}, got {caught.value!r}"
            )
            return []
        txn = self.send(request, key)
        expected = self.apply_to_model(request)
        assert txn.key == key
        assert txn.kind is request.kind
        assert txn.type is request.type
        assert sum(entry.amount for entry in txn.entries) == 0
        assert [entry.index for entry in txn.entries] == list(range(len(txn.entries)))
        assert all(entry.txn_id == txn.id for entry in txn.entries)
        actual = [shape_of(e) for e in txn.entries]
        assert actual == expected, f"{request}: entries {actual} != model {expected}"
        self.used[key] = Used(request, txn)
        self.results.append(txn)
        return [key]

    # -- operations under fresh keys ---------------------------------------

    @initialize(target=keys, amounts=st.lists(AMOUNTS, min_size=USERS, max_size=USERS))
    def fund(self, amounts: list[int]) -> object:
        """Grant every user some tokens first, so that spending can succeed early."""
        return multiple(
            *(
                key
                for user, amount in enumerate(amounts)
                for key in self.run(Request(OpKind.CREDIT, user, amount, TxnType.GRANT))
            )
        )

    @staticmethod
    def fitted(amount: int, limit: int) -> int:
        """``amount`` folded into 1..limit: a request the balance (or debt) can cover."""
        return 1 + (amount - 1) % limit if limit > 0 else amount

    @rule(
        target=keys,
        user=USER_INDEXES,
        amount=AMOUNTS,
        txn_type=st.sampled_from([TxnType.PURCHASE, TxnType.GRANT, TxnType.DISPUTE_REVERSAL]),
        to_debtor=st.booleans(),
    )
    def credit(self, user: int, amount: int, txn_type: TxnType, to_debtor: bool) -> object:
        debtors = [i for i in range(USERS) if self.debt[i] > 0]
        if to_debtor and debtors:  # a user in debt buys tokens: then repaying can succeed
            user = debtors[user % len(debtors)]
        return multiple(*self.run(Request(OpKind.CREDIT, user, amount, txn_type)))

    @rule(target=keys, user=USER_INDEXES, amount=AMOUNTS, fit=st.booleans())
    def spend(self, user: int, amount: int, fit: bool) -> object:
        amount = self.fitted(amount, self.balance[user]) if fit else amount
        return multiple(*self.run(Request(OpKind.DEBIT, user, amount, TxnType.SPEND)))

    @rule(
        target=keys,
        sender=USER_INDEXES,
        step=st.integers(1, USERS - 1),
        amount=AMOUNTS,
        fit=st.booleans(),
    )
    def transfer(self, sender: int, step: int, amount: int, fit: bool) -> object:
        amount = self.fitted(amount, self.balance[sender]) if fit else amount
        recipient = (sender + step) % USERS
        request = Request(OpKind.TRANSFER, sender, amount, TxnType.TRANSFER, recipient)
        return multiple(*self.run(request))

    @rule(
        target=keys,
        user=USER_INDEXES,
        amount=AMOUNTS,
        txn_type=st.sampled_from([TxnType.REFUND, TxnType.DISPUTE]),
    )
    def clawback(self, user: int, amount: int, txn_type: TxnType) -> object:
        return multiple(*self.run(Request(OpKind.CLAWBACK, user, amount, txn_type)))

    @rule(target=keys, user=USER_INDEXES, amount=AMOUNTS)
    def repay_debt(self, user: int, amount: int) -> object:
        request = Request(OpKind.REPAY_DEBT, user, amount, TxnType.DEBT_REPAYMENT)
        return multiple(*self.run(request))

    def able_to_repay(self) -> list[int]:
        return [i for i in range(USERS) if self.debt[i] > 0 and self.balance[i] > 0]

    @precondition(lambda self: bool(self.able_to_repay()))
    @rule(target=keys, pick=st.integers(0, USERS - 1), amount=AMOUNTS)
    def repay_what_fits(self, pick: int, amount: int) -> object:
        """A repayment that the model says must succeed (random ones rarely do)."""
        able = self.able_to_repay()
        user = able[pick % len(able)]
        amount = self.fitted(amount, min(self.balance[user], self.debt[user]))
        request = Request(OpKind.REPAY_DEBT, user, amount, TxnType.DEBT_REPAYMENT)
        return multiple(*self.run(request))

    # -- holds -------------------------------------------------------------

    def hold_line(self, txn: JournalTransaction, user: int, delta: int, txn_type: TxnType) -> None:
        """Check a hold, capture or release against the model and record its entry."""
        self.balance[user] += delta
        shape: EntryShape = (
            user_account(self.users[user]),
            delta,
            txn_type,
            self.users[user],
            len(self.entries[user]) + 1,
            self.balance[user],
            self.debt[user],
            None,
        )
        self.entries[user].append(shape)
        actual = shape_of(txn.user_entry(self.users[user]))
        assert actual == shape, f"{txn.kind}: {actual} != model {shape}"
        assert sum(e.amount for e in txn.entries) == 0
        self.results.append(txn)

    @rule(user=USER_INDEXES, amount=AMOUNTS, fit=st.booleans())
    def hold(self, user: int, amount: int, fit: bool) -> None:
        free = self.balance[user] - self.held(user)
        amount = self.fitted(amount, free) if fit else amount
        request = Request(OpKind.HOLD, user, amount, TxnType.HOLD)
        error = self.expected_error(request)
        key = self.new_key()
        if error is not None:
            with pytest.raises(error):
                self.ledger.hold(self.users[user], amount, key=key, ttl_s=3600)
            return
        txn = self.ledger.hold(self.users[user], amount, key=key, ttl_s=3600)
        self.holds[user][txn.id] = amount
        self.hold_line(txn, user, 0, TxnType.HOLD)

    def open_holds(self) -> list[tuple[int, str]]:
        # Insertion order, not the (random) ids: a replayed example must pick the same hold.
        return [(u, h) for u in range(USERS) for h in self.holds[u] if h not in self.metered[u]]

    @precondition(lambda self: bool(self.open_holds()))
    @rule(pick=st.integers(0, 63), amount=AMOUNTS, release=st.booleans())
    def settle_hold(self, pick: int, amount: int, release: bool) -> None:
        """Capture part of a hold (spending it) or release it; either way it closes."""
        user, hold_id = self.open_holds()[pick % len(self.open_holds())]
        reserved = self.holds[user].pop(hold_id)
        if release:
            txn = self.ledger.release(self.users[user], hold_id)
            self.hold_line(txn, user, 0, TxnType.HOLD_RELEASE)
            return
        amount = self.fitted(amount, reserved)
        if amount > self.balance[user]:  # a clawback took the reserved tokens
            self.holds[user][hold_id] = reserved
            with pytest.raises(InsufficientBalance):
                self.ledger.capture(self.users[user], hold_id, amount)
            return
        txn = self.ledger.capture(self.users[user], hold_id, amount)
        self.system[SystemAccount.SPEND] += amount
        self.hold_line(txn, user, -amount, TxnType.SPEND)
        assert self.ledger.capture(self.users[user], hold_id, amount) == txn  # retried
        with pytest.raises(HoldNotFound):
            self.ledger.release(self.users[user], hold_id)

    # -- usage sessions ----------------------------------------------------

    @rule(user=USER_INDEXES, amount=AMOUNTS, fit=st.booleans())
    def start_usage(self, user: int, amount: int, fit: bool) -> None:
        amount = self.fitted(amount, self.balance[user] - self.held(user)) if fit else amount
        error = self.expected_error(Request(OpKind.HOLD, user, amount, TxnType.HOLD))
        key = self.new_key()
        if error is not None:
            with pytest.raises(error):
                self.meter.start(self.users[user], amount, key=key, ttl_s=3600)
            return
        txn = self.meter.start(self.users[user], amount, key=key, ttl_s=3600)
        self.holds[user][txn.id], self.metered[user][txn.id] = amount, 0
        self.hold_line(txn, user, 0, TxnType.USAGE_START)

    def open_sessions(self) -> list[tuple[int, str]]:
        return [(u, s) for u in range(USERS) for s in self.metered[u]]

    @precondition(lambda self: bool(self.open_sessions()))
    @rule(pick=st.integers(0, 63), amount=AMOUNTS, fit=st.booleans())
    def charge_usage(self, pick: int, amount: int, fit: bool) -> None:
        user, sid = self.open_sessions()[pick % len(self.open_sessions())]
        remaining = self.holds[user][sid]
        amount = self.fitted(amount, remaining) if fit else amount
        key = self.new_key()
        error: type[DomainError] | None = ReserveExceeded if amount > remaining else None
        if error is None and amount > self.balance[user]:  # a clawback took reserved tokens
            error = InsufficientBalance
        if error is not None:
            with pytest.raises(error):
                self.meter.charge(self.users[user], sid, amount, key=key)
            return
        txn = self.meter.charge(self.users[user], sid, amount, key=key)
        self.holds[user][sid] -= amount
        self.metered[user][sid] += amount
        self.system[SystemAccount.SPEND] += amount
        self.hold_line(txn, user, -amount, TxnType.USAGE)
        assert txn.refs["captured"] == str(self.metered[user][sid])
        assert self.meter.charge(self.users[user], sid, amount, key=key) == txn  # retried

    @precondition(lambda self: bool(self.open_sessions()))
    @rule(pick=st.integers(0, 63), amount=AMOUNTS, fit=st.booleans())
    def top_up_usage(self, pick: int, amount: int, fit: bool) -> None:
        user, sid = self.open_sessions()[pick % len(self.open_sessions())]
        amount = self.fitted(amount, self.balance[user] - self.held(user)) if fit else amount
        error = self.expected_error(Request(OpKind.HOLD, user, amount, TxnType.HOLD))
        key = self.new_key()
        if error is not None:
            with pytest.raises(error):
                self.meter.top_up(self.users[user], sid, amount, key=key)
            return
        txn = self.meter.top_up(self.users[user], sid, amount, key=key)
        self.holds[user][sid] += amount
        self.hold_line(txn, user, 0, TxnType.USAGE_TOP_UP)

    @precondition(lambda self: bool(self.open_sessions()))
    @rule(pick=st.integers(0, 63))
    def close_usage(self, pick: int) -> None:
        user, sid = self.open_sessions()[pick % len(self.open_sessions())]
        released, captured = self.holds[user].pop(sid), self.metered[user].pop(sid)
        txn = self.meter.close(self.users[user], sid)
        self.hold_line(txn, user, 0, TxnType.USAGE_CLOSE)
        assert (txn.refs["captured"], txn.refs["released"]) == (str(captured), str(released))
        assert self.meter.close(self.users[user], sid) == txn  # closes once

    # -- replays of used keys ----------------------------------------------

    @rule(key=keys)
    def replay_same_request(self, key: str) -> None:
        used = self.used[key]
        again = self.send(used.request, key)
        assert again == used.first, f"replay of {key} returned {again} != {used.first}"
        assert transaction_by_key(self.ledger, key) == used.first

    @rule(key=keys, shift=st.integers(1, 59))
    def replay_other_amount(self, key: str, shift: int) -> None:
        used = self.used[key]
        amount = (used.request.amount - 1 + shift) % 60 + 1
        assert amount != used.request.amount
        try:
            self.send(used.request.with_amount(amount), key)
        except IdempotencyConflict:
            pass
        else:
            raise AssertionError(f"key {key} reused with amount {amount} was accepted")

    # -- invariants ---------------------------------------------------------

    @invariant()
    def transactions_balance(self) -> None:
        for txn in self.results:
            assert sum(entry.amount for entry in txn.entries) == 0, txn

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
            assert account.seq == len(self.entries[index])
            assert set(account.holds) == set(self.holds[index])
            assert account.metered == self.metered[index]
            assert {h: account.holds[h][0] for h in account.metered} == {
                s: self.holds[index][s] for s in self.metered[index]
            }
            assert account.held(format_time(utc_now())) == self.held(index)
            users_total += account.balance

            history: list[Entry] = []
            cursor: str | None = None
            while True:
                page = self.ledger.history(user, limit=PAGE, cursor=cursor)
                history.extend(page.entries)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sum(entry.amount for entry in history) == account.balance
            if history:
                assert history[0].balance_after == account.balance
                assert history[0].debt_after == account.debt
            actual = [shape_of(e) for e in history]
            assert actual == self.entries[index][::-1], f"{user}: history differs from model"

        system = system_balances(self.ledger)
        system_change = {a: system[a] - self.system_start[a] for a in SystemAccount}
        users_gain = sum(self.balance.values())
        assert users_total == users_gain
        assert users_total + sum(system_change.values()) == 0, (users_total, system_change)
        assert sum(system_change.values()) == -users_gain
        assert system_change == self.system, (system_change, self.system)


FAST = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_ledger_agrees_with_model(store_factory: StoreFactory) -> None:
    store = store_factory()
    chosen = FAST if isinstance(store, SqliteStore) else SLOW

    class Machine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(store)

    run_state_machine_as_test(Machine, settings=chosen)
