"""The storage contract: every ledger operation, read and error, on every store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.errors import (
    AccountInDebt,
    AccountNotFound,
    DebtRepaymentTooLarge,
    DomainError,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAccount,
    InvalidAmount,
    InvalidCursor,
    InvalidIdempotencyKey,
    SelfTransfer,
    TransactionNotFound,
)
from services.ledger.model import JournalTransaction, SystemAccount, TxnType, format_time
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.ledger_reads import system_balances, transaction_by_key

USERS = ("alice", "bob", "carol")


@pytest.fixture
def funded(ledger: TokenLedger) -> TokenLedger:
    """alice 100, bob 0, carol 0."""
    for user in USERS:
        ledger.open_account(user)
    ledger.credit("alice", 100, key="fund-alice", reason="pack starter")
    return ledger


def state(ledger: TokenLedger) -> dict[str, Any]:
    """Everything an operation could change, to show that a refusal changed nothing."""
    accounts = {u: ledger.balance(u) for u in USERS}
    histories = {u: ledger.history(u, limit=100).entries for u in USERS}
    return {"accounts": accounts, "histories": histories, "system": system_balances(ledger)}


def entries_total(ledger: TokenLedger, user: str) -> int:
    total, cursor = 0, None
    while True:
        page = ledger.history(user, limit=7, cursor=cursor)
        total += sum(e.amount for e in page.entries)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


def assert_balanced(txn: JournalTransaction) -> None:
    assert sum(e.amount for e in txn.entries) == 0
    assert len(txn.entries) >= 2


def assert_books_close(ledger: TokenLedger) -> None:
    """DESIGN.md invariants 1-3 over the test's users."""
    balances = {u: ledger.balance(u).balance for u in USERS}
    assert sum(balances.values()) + sum(system_balances(ledger).values()) == 0
    for user, balance in balances.items():
        assert balance >= 0
        assert entries_total(ledger, user) == balance


class TestAccounts:
    def test_open_account_is_idempotent_and_starts_empty(self, ledger: TokenLedger) -> None:
        first = ledger.open_account("alice")
        again = ledger.open_account("alice")
        assert (first.balance, first.debt, first.status) == (0, 0, "active")
        assert again == first

    def test_unknown_account_is_not_found(self, ledger: TokenLedger) -> None:
        with pytest.raises(AccountNotFound):
            ledger.balance("nobody")
        with pytest.raises(AccountNotFound):
            ledger.credit("nobody", 5, key="k")
        with pytest.raises(AccountNotFound):
            ledger.history("nobody")
        with pytest.raises(TransactionNotFound):
            transaction_by_key(ledger, "k")


class TestOperations:
    def test_credit_issues_tokens_from_the_issuance_account(self, funded: TokenLedger) -> None:
        txn = funded.credit(
            "bob", 110, key="buy-1", type=TxnType.PURCHASE, refs={"purchase_id": "p1"}
        )
        assert_balanced(txn)
        assert {e.account: e.amount for e in txn.entries} == {
            "user:bob": 110,
            str(SystemAccount.ISSUANCE): -110,
        }
        assert funded.balance("bob").balance == 110
        entry = funded.history("bob").entries[0]
        assert (entry.amount, entry.balance_after, entry.type) == (110, 110, TxnType.PURCHASE)
        assert funded.transaction(txn.id).refs == {"purchase_id": "p1"}
        assert_books_close(funded)

    def test_grant_is_a_credit_of_its_own_type(self, funded: TokenLedger) -> None:
        funded.credit("carol", 25, key="grant-1", type=TxnType.GRANT, reason="welcome")
        [entry] = funded.history("carol").entries
        assert (entry.type, entry.reason, entry.amount) == (TxnType.GRANT, "welcome", 25)

    def test_spend_moves_tokens_to_the_spend_account(self, funded: TokenLedger) -> None:
        txn = funded.spend("alice", 30, key="spend-1", reason="image generation")
        assert_balanced(txn)
        assert txn.user_entry("alice").balance_after == 70
        assert system_balances(funded)[SystemAccount.SPEND] == 30
        assert_books_close(funded)

    def test_spend_more_than_the_balance_fails_and_writes_nothing(
        self, funded: TokenLedger
    ) -> None:
        before = state(funded)
        with pytest.raises(InsufficientBalance, match="100"):
            funded.spend("alice", 101, key="spend-big")
        assert state(funded) == before
        with pytest.raises(TransactionNotFound):
            transaction_by_key(funded, "spend-big")

    def test_transfer_names_the_other_party_on_both_sides(self, funded: TokenLedger) -> None:
        txn = funded.transfer("alice", "bob", 40, key="tip-1", reason="thanks")
        assert_balanced(txn)
        sent, received = txn.user_entry("alice"), txn.user_entry("bob")
        assert (sent.amount, sent.balance_after, sent.counterparty_id) == (-40, 60, "bob")
        assert (received.amount, received.balance_after, received.counterparty_id) == (
            40,
            40,
            "alice",
        )
        assert funded.history("bob").entries[0].counterparty_id == "alice"
        assert_books_close(funded)

    def test_transfer_refusals_write_nothing(self, funded: TokenLedger) -> None:
        before = state(funded)
        with pytest.raises(InsufficientBalance):
            funded.transfer("bob", "alice", 1, key="t1")
        with pytest.raises(AccountNotFound):
            funded.transfer("alice", "nobody", 1, key="t2")
        with pytest.raises(SelfTransfer):
            funded.transfer("alice", "alice", 1, key="t3")
        assert state(funded) == before

    def test_clawback_within_the_balance_leaves_no_debt(self, funded: TokenLedger) -> None:
        txn = funded.clawback("alice", 60, key="refund-1", type=TxnType.REFUND)
        assert_balanced(txn)
        account = funded.balance("alice")
        assert (account.balance, account.debt, account.status) == (40, 0, "active")
        assert system_balances(funded)[SystemAccount.CLAWBACK] == 60

    def test_clawback_beyond_the_balance_records_debt(self, funded: TokenLedger) -> None:
        funded.spend("alice", 70, key="spend-1")
        txn = funded.clawback("alice", 100, key="dispute-1", type=TxnType.DISPUTE)
        assert_balanced(txn)
        entry = txn.user_entry("alice")
        assert (entry.amount, entry.balance_after, entry.debt_after) == (-30, 0, 70)
        account = funded.balance("alice")
        assert (account.balance, account.debt, account.status) == (0, 70, "debt")
        assert_books_close(funded)

    def test_an_account_in_debt_cannot_spend_or_send_but_can_receive(
        self, funded: TokenLedger
    ) -> None:
        funded.clawback("bob", 20, key="refund-bob")
        before = state(funded)
        with pytest.raises(AccountInDebt):
            funded.spend("bob", 1, key="s")
        with pytest.raises(AccountInDebt):
            funded.transfer("bob", "alice", 1, key="t")
        assert state(funded) == before
        funded.transfer("alice", "bob", 30, key="gift")
        assert funded.balance("bob").balance == 30

    def test_debt_repayment_pays_the_clawback_account(self, funded: TokenLedger) -> None:
        funded.clawback("bob", 20, key="refund-bob")
        funded.credit("bob", 50, key="buy-bob")
        txn = funded.repay_debt("bob", 20, key="repay-bob", refs={"purchase_id": "p9"})
        assert_balanced(txn)
        account = funded.balance("bob")
        assert (account.balance, account.debt, account.status) == (30, 0, "active")
        assert system_balances(funded)[SystemAccount.CLAWBACK] == 20
        funded.spend("bob", 30, key="spend-bob")
        assert_books_close(funded)

    def test_debt_repayment_refusals(self, funded: TokenLedger) -> None:
        funded.clawback("bob", 20, key="refund-bob")
        funded.credit("bob", 10, key="buy-bob")
        before = state(funded)
        with pytest.raises(DebtRepaymentTooLarge):
            funded.repay_debt("bob", 21, key="r1")
        with pytest.raises(InsufficientBalance):
            funded.repay_debt("bob", 15, key="r2")
        with pytest.raises(DebtRepaymentTooLarge):
            funded.repay_debt("alice", 1, key="r3")
        assert state(funded) == before


class TestIdempotency:
    def test_same_key_same_request_returns_the_first_result(self, funded: TokenLedger) -> None:
        first = funded.spend("alice", 10, key="spend-1", reason="job 1")
        again = funded.spend("alice", 10, key="spend-1", reason="job 1")
        assert again == first
        assert funded.balance("alice").balance == 90
        assert len(funded.history("alice").entries) == 2

    @pytest.mark.parametrize(
        "different",
        [
            lambda led: led.spend("alice", 11, key="spend-1", reason="job 1"),
            lambda led: led.spend("alice", 10, key="spend-1", reason="job 2"),
            lambda led: led.spend("bob", 10, key="spend-1", reason="job 1"),
            lambda led: led.credit("alice", 10, key="spend-1", reason="job 1"),
        ],
        ids=["amount", "reason", "account", "operation"],
    )
    def test_same_key_different_request_is_a_conflict(
        self, funded: TokenLedger, different: Any
    ) -> None:
        funded.spend("alice", 10, key="spend-1", reason="job 1")
        before = state(funded)
        with pytest.raises(IdempotencyConflict):
            different(funded)
        assert state(funded) == before

    def test_a_refused_request_does_not_use_up_its_key(self, funded: TokenLedger) -> None:
        with pytest.raises(InsufficientBalance):
            funded.spend("bob", 5, key="later")
        funded.credit("bob", 5, key="fund-bob")
        assert funded.spend("bob", 5, key="later").user_entry("bob").balance_after == 0

    def test_lookup_by_id_and_by_key(self, funded: TokenLedger) -> None:
        txn = funded.transfer("alice", "carol", 5, key="tip-9")
        assert funded.transaction(txn.id) == txn
        assert transaction_by_key(funded, "tip-9") == txn
        with pytest.raises(TransactionNotFound):
            funded.transaction("txn_missing")
        with pytest.raises(TransactionNotFound):
            transaction_by_key(funded, "never-used")


class TestBadInput:
    @pytest.mark.parametrize(
        "amount",
        [0, -1, 1.5, "10", None, True, 10**12 + 1, float("nan")],
        ids=["zero", "negative", "float", "string", "none", "bool", "huge", "nan"],
    )
    def test_bad_amounts_are_refused_for_every_operation(
        self, funded: TokenLedger, amount: Any
    ) -> None:
        funded.clawback("bob", 5, key="debt-bob")
        before = state(funded)
        calls: list[Callable[[], object]] = [
            lambda: funded.credit("alice", amount, key="k1"),
            lambda: funded.spend("alice", amount, key="k2"),
            lambda: funded.transfer("alice", "carol", amount, key="k3"),
            lambda: funded.clawback("alice", amount, key="k4"),
            lambda: funded.repay_debt("bob", amount, key="k5"),
        ]
        for call in calls:
            with pytest.raises(InvalidAmount, match="amount"):
                call()
        assert state(funded) == before

    @pytest.mark.parametrize(
        "key",
        ["", "   ", "x" * 256, "tab\there", None],
        ids=["empty", "blank", "long", "control", "none"],
    )
    def test_bad_idempotency_keys_are_refused(self, funded: TokenLedger, key: Any) -> None:
        before = state(funded)
        with pytest.raises(InvalidIdempotencyKey):
            funded.spend("alice", 1, key=key)
        assert state(funded) == before

    def test_the_longest_allowed_key_works(self, funded: TokenLedger) -> None:
        key = "k" * 255
        assert funded.spend("alice", 1, key=key) == transaction_by_key(funded, key)

    @pytest.mark.parametrize("user", ["", "a/b", "..", "__x__", "x" * 129, "sp ace"])
    def test_malformed_account_ids_are_refused(self, funded: TokenLedger, user: str) -> None:
        with pytest.raises(InvalidAccount):
            funded.credit(user, 1, key="k")
        with pytest.raises(InvalidAccount):
            funded.open_account(user)

    def test_every_refusal_is_a_domain_error_with_a_message(self, funded: TokenLedger) -> None:
        with pytest.raises(DomainError) as caught:
            funded.transfer("alice", "alice", 1, key="self")
        assert caught.value.code == "self_transfer"
        assert "same account" in caught.value.message


class TestHistory:
    def test_pages_newest_first_with_a_type_filter_in_the_query(self, funded: TokenLedger) -> None:
        for i in range(5):
            funded.spend("alice", 1 + i, key=f"spend-{i}")
            funded.credit("alice", 1, key=f"grant-{i}", type=TxnType.GRANT)
        seen: list[int] = []
        page = funded.history("alice", limit=2, txn_type="spend")
        while True:
            assert all(e.type == TxnType.SPEND for e in page.entries)
            seen += [e.amount for e in page.entries]
            if page.next_cursor is None:
                break
            page = funded.history("alice", limit=2, txn_type="spend", cursor=page.next_cursor)
        assert seen == [-5, -4, -3, -2, -1]
        everything = funded.history("alice", limit=100).entries
        assert [e.seq for e in everything] == list(range(11, 0, -1))
        assert funded.history("alice", limit=11).next_cursor is None

    def test_history_shows_only_the_users_own_entries(self, funded: TokenLedger) -> None:
        funded.transfer("alice", "bob", 3, key="tip")
        funded.credit("carol", 9, key="c")
        assert {e.user_id for e in funded.history("bob").entries} == {"bob"}

    @pytest.mark.parametrize("cursor", ["garbage!", "czA", "eDE", "%%%"])
    def test_a_forged_cursor_is_refused(self, funded: TokenLedger, cursor: str) -> None:
        with pytest.raises(InvalidCursor):
            funded.history("alice", cursor=cursor)

    @pytest.mark.parametrize("limit", [0, 101, -3])
    def test_limit_must_be_1_to_100(self, funded: TokenLedger, limit: int) -> None:
        with pytest.raises(DomainError, match="limit"):
            funded.history("alice", limit=limit)

    def test_unknown_type_filter_is_refused(self, funded: TokenLedger) -> None:
        with pytest.raises(DomainError, match="type"):
            funded.history("alice", txn_type="bonus")

    def test_the_store_tells_an_unknown_account_from_an_empty_one(
        self, funded: TokenLedger, store: Store
    ) -> None:
        # The ledger's history relies on this rather than reading the account first.
        assert store.list_entries("bob", 10, None, None) == []
        for before in (None, 5):
            with pytest.raises(AccountNotFound):
                store.list_entries("nobody", 10, before, None)


def test_every_transaction_is_streamed_for_reconciliation(funded: TokenLedger) -> None:
    funded.transfer("alice", "bob", 10, key="t")
    funded.spend("bob", 4, key="s")
    streamed = list(funded.store.iter_transactions())
    assert {t.key for t in streamed} == {"fund-alice", "t", "s"}
    for txn in streamed:
        assert_balanced(txn)


class TestHolds:
    def test_held_tokens_are_not_available_until_released(self, funded: TokenLedger) -> None:
        hold = funded.hold("alice", 60, key="job-1", ttl_s=600, reason="video")
        account = funded.balance("alice")
        now = hold.created_at
        assert (account.balance, account.held(now), account.available(now)) == (100, 60, 40)
        with pytest.raises(InsufficientBalance, match="on hold"):
            funded.spend("alice", 41, key="s1")
        with pytest.raises(InsufficientBalance):
            funded.transfer("alice", "bob", 41, key="t1")
        funded.release("alice", hold.id)
        assert funded.balance("alice").available(now) == 100
        assert funded.release("alice", hold.id).kind == hold.kind.RELEASE  # idempotent
        assert_books_close(funded)

    def test_a_capture_spends_part_and_releases_the_rest(self, funded: TokenLedger) -> None:
        hold = funded.hold("alice", 60, key="job-2", ttl_s=600)
        captured = funded.capture("alice", hold.id, 45)
        assert captured.user_entry("alice").balance_after == 55
        assert funded.capture("alice", hold.id, 45) == captured  # a retried capture
        account = funded.balance("alice")
        assert (account.balance, account.available(captured.created_at)) == (55, 55)
        with pytest.raises(HoldNotFound):
            funded.release("alice", hold.id)
        assert system_balances(funded)[SystemAccount.SPEND] == 45
        assert_books_close(funded)

    def test_hold_refusals(self, funded: TokenLedger) -> None:
        hold = funded.hold("alice", 60, key="job-3", ttl_s=600)
        with pytest.raises(InvalidAmount):
            funded.capture("alice", hold.id, 61)
        with pytest.raises(InsufficientBalance):
            funded.hold("alice", 41, key="job-4", ttl_s=600)
        with pytest.raises(HoldNotFound):
            funded.capture("alice", "txn_nothing", 1)
        with pytest.raises(InvalidAmount):
            funded.hold("alice", 1, key="job-5", ttl_s=0)
        funded.clawback("bob", 1, key="debt-bob")
        with pytest.raises(AccountInDebt):
            funded.hold("bob", 1, key="job-6", ttl_s=60)

    def test_an_expired_hold_stops_counting_and_cannot_be_captured(self, store: Store) -> None:
        clock = [datetime(2026, 1, 1, tzinfo=UTC)]
        ledger = TokenLedger(store, clock=lambda: clock[0])
        ledger.open_account("alice")
        ledger.credit("alice", 100, key="fund")
        hold = ledger.hold("alice", 70, key="job", ttl_s=60)
        clock[0] += timedelta(seconds=61)
        later = format_time(clock[0])
        assert ledger.balance("alice").available(later) == 100
        with pytest.raises(HoldNotFound):
            ledger.capture("alice", hold.id, 10)
        ledger.spend("alice", 90, key="spend")  # the next write drops the expired hold
        assert ledger.balance("alice").holds == {}


def test_the_periodic_task_releases_expired_holds(store: Store) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    ledger = TokenLedger(store, clock=lambda: clock[0])
    for user in ("a", "b"):
        ledger.open_account(user)
        ledger.credit(user, 10, key=f"fund-{user}")
    ledger.hold("a", 5, key="h1", ttl_s=60)
    ledger.hold("b", 5, key="h2", ttl_s=3600)
    clock[0] += timedelta(minutes=5)
    assert ledger.release_expired_holds() == 1
    assert ledger.history("a").entries[0].type == TxnType.HOLD_RELEASE
    assert ledger.balance("b").holds != {}
