"""Usage sessions on every store: increments, idempotency, the reserve, top-ups, close, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.errors import (
    AccountInDebt,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAmount,
    ReserveExceeded,
    UsageSessionExpired,
    UsageSessionNotFound,
)
from services.ledger.model import JournalTransaction, SystemAccount, TxnType, format_time
from services.store.port import Store
from services.tokens import TokenLedger
from services.usage import UsageMeter, UsageSession
from tests.contract.test_ledger_contract import USERS, assert_books_close, state
from tests.support.ledger_reads import system_balances


@pytest.fixture
def meter(ledger: TokenLedger) -> UsageMeter:
    """alice 100, bob 0, carol 0."""
    for user in USERS:
        ledger.open_account(user)
    ledger.credit("alice", 100, key="fund-alice")
    return UsageMeter(ledger)


def view(meter: UsageMeter, session_id: str, user: str = "alice") -> tuple[object, ...]:
    s: UsageSession = meter.session(user, session_id)
    return (s.state, s.reserved, s.captured, s.remaining)


def available(meter: UsageMeter, user: str = "alice") -> tuple[int, int]:
    account = meter.ledger.balance(user)
    now = format_time(meter.ledger.clock())
    return account.balance, account.available(now)


def test_increments_are_spent_from_the_reserve(meter: UsageMeter) -> None:
    session = meter.start("alice", 30, key="call-1", ttl_s=600, reason="video call")
    assert available(meter) == (100, 70)
    first = meter.charge("alice", session.id, 10, key="minute-1")
    second = meter.charge("alice", session.id, 5, key="minute-2")
    assert (first.refs["captured"], first.refs["remaining"]) == ("10", "20")
    assert second.user_entry("alice").balance_after == 85
    assert available(meter) == (85, 70)  # charges come out of the reserve, not the rest
    assert view(meter, session.id) == ("open", 30, 15, 15)
    assert system_balances(meter.ledger)[SystemAccount.SPEND] == 15
    for txn in (session, first, second):
        assert sum(e.amount for e in txn.entries) == 0
    assert [e.type for e in meter.ledger.history("alice").entries[:3]] == [
        TxnType.USAGE,
        TxnType.USAGE,
        TxnType.USAGE_START,
    ]
    assert_books_close(meter.ledger)


def test_a_repeated_key_returns_the_first_charge_and_another_amount_conflicts(
    meter: UsageMeter,
) -> None:
    session = meter.start("alice", 30, key="call", ttl_s=600)
    first = meter.charge("alice", session.id, 10, key="minute-1")
    meter.charge("alice", session.id, 5, key="minute-2")
    again = meter.charge("alice", session.id, 10, key="minute-1")
    assert again == first and again.refs["captured"] == "10"  # the first answer, not today's
    before = state(meter.ledger)
    with pytest.raises(IdempotencyConflict):
        meter.charge("alice", session.id, 11, key="minute-1")
    assert state(meter.ledger) == before
    assert view(meter, session.id) == ("open", 30, 15, 15)


def test_charges_never_pass_the_reserve(meter: UsageMeter) -> None:
    session = meter.start("alice", 20, key="call", ttl_s=600)
    meter.charge("alice", session.id, 15, key="m1")
    before = state(meter.ledger)
    with pytest.raises(ReserveExceeded, match="5 tokens of the reserve are left"):
        meter.charge("alice", session.id, 6, key="m2")
    assert state(meter.ledger) == before
    meter.charge("alice", session.id, 5, key="m3")
    with pytest.raises(ReserveExceeded):
        meter.charge("alice", session.id, 1, key="m4")
    assert view(meter, session.id) == ("open", 20, 20, 0)
    assert available(meter) == (80, 80)


def test_a_top_up_is_limited_by_the_available_balance(meter: UsageMeter) -> None:
    session = meter.start("alice", 60, key="call", ttl_s=60)
    expires = meter.session("alice", session.id).expires_at
    with pytest.raises(InsufficientBalance, match="40 tokens available"):
        meter.top_up("alice", session.id, 41, key="more-1")
    longer = meter.top_up("alice", session.id, 30, key="more-2", ttl_s=3600)
    assert longer.refs["remaining"] == "90" and longer.refs["expires_at"] > str(expires)
    assert meter.top_up("alice", session.id, 30, key="more-2", ttl_s=3600) == longer
    topped = meter.top_up("alice", session.id, 10, key="more-3")
    assert topped.refs["expires_at"] == longer.refs["expires_at"]  # no ttl: expiry kept
    assert meter.session("alice", session.id).expires_at == longer.refs["expires_at"]
    assert available(meter) == (100, 0)
    with pytest.raises(InsufficientBalance):
        meter.ledger.spend("alice", 1, key="spend")
    with pytest.raises(InsufficientBalance):
        meter.top_up("alice", session.id, 1, key="more-4")
    assert view(meter, session.id) == ("open", 100, 0, 100)
    meter.charge("alice", session.id, 100, key="all")
    assert available(meter) == (0, 0)
    assert_books_close(meter.ledger)


def test_a_top_up_never_shortens_the_session(meter: UsageMeter) -> None:
    session = meter.start("alice", 10, key="call", ttl_s=3600)
    expires = meter.session("alice", session.id).expires_at
    meter.top_up("alice", session.id, 5, key="more", ttl_s=60)
    assert meter.session("alice", session.id).expires_at == expires


def test_close_releases_the_rest_exactly_once(meter: UsageMeter) -> None:
    session = meter.start("alice", 50, key="call", ttl_s=600)
    meter.charge("alice", session.id, 20, key="m1")
    closed = meter.close("alice", session.id)
    assert (closed.refs["captured"], closed.refs["released"]) == ("20", "30")
    assert sum(e.amount for e in closed.entries) == 0
    assert available(meter) == (80, 80)
    entries = len(meter.ledger.history("alice", limit=100).entries)
    assert meter.close("alice", session.id) == closed
    assert len(meter.ledger.history("alice", limit=100).entries) == entries
    assert view(meter, session.id) == ("closed", 50, 20, 0)
    with pytest.raises(UsageSessionNotFound):
        meter.charge("alice", session.id, 1, key="m2")
    with pytest.raises(UsageSessionNotFound):
        meter.top_up("alice", session.id, 1, key="more")
    assert meter.charge("alice", session.id, 20, key="m1").refs["captured"] == "20"  # a replay
    assert system_balances(meter.ledger)[SystemAccount.SPEND] == 20
    assert_books_close(meter.ledger)


def test_another_users_session_is_not_found(meter: UsageMeter) -> None:
    meter.ledger.credit("bob", 50, key="fund-bob")
    session = meter.start("alice", 50, key="call", ttl_s=600)
    for attempt in (
        lambda: meter.charge("bob", session.id, 1, key="steal"),
        lambda: meter.top_up("bob", session.id, 1, key="grow"),
        lambda: meter.session("bob", session.id),
        lambda: meter.close("bob", session.id),
    ):
        with pytest.raises(UsageSessionNotFound):
            attempt()
    meter.close("alice", session.id)
    with pytest.raises(UsageSessionNotFound):
        meter.close("bob", session.id)
    with pytest.raises(UsageSessionNotFound):
        meter.session("bob", session.id)
    assert available(meter, "bob") == (50, 50)


def test_an_expired_session_keeps_what_was_captured(store: Store) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    meter = UsageMeter(TokenLedger(store, clock=lambda: clock[0]))
    meter.ledger.open_account("alice")
    meter.ledger.credit("alice", 100, key="fund")
    session = meter.start("alice", 40, key="call", ttl_s=60)
    meter.charge("alice", session.id, 10, key="m1")
    clock[0] += timedelta(seconds=61)
    assert available(meter) == (90, 90)  # the rest is no longer held
    with pytest.raises(UsageSessionExpired):
        meter.charge("alice", session.id, 1, key="m2")
    with pytest.raises(UsageSessionExpired):
        meter.top_up("alice", session.id, 1, key="more", ttl_s=600)
    meter.ledger.spend("alice", 5, key="other")  # another write keeps the expired session
    assert view(meter, session.id) == ("expired", 40, 10, 0)
    assert meter.ledger.release_expired_holds() == 1
    assert meter.ledger.history("alice").entries[0].type == TxnType.USAGE_CLOSE
    assert view(meter, session.id) == ("closed", 40, 10, 0)
    assert meter.ledger.release_expired_holds() == 0
    assert meter.ledger.balance("alice").holds == {}
    assert available(meter) == (85, 85)


def test_hold_routes_do_not_capture_a_session(meter: UsageMeter) -> None:
    session = meter.start("alice", 30, key="call", ttl_s=600)
    with pytest.raises(HoldNotFound):
        meter.ledger.capture("alice", session.id, 30)
    released = meter.ledger.release("alice", session.id)  # releasing a session closes it
    assert released.type == TxnType.USAGE_CLOSE and released.refs["released"] == "30"
    assert view(meter, session.id) == ("closed", 30, 0, 0)


def test_a_plain_hold_and_a_session_live_side_by_side(meter: UsageMeter) -> None:
    hold = meter.ledger.hold("alice", 20, key="job", ttl_s=600)
    session = meter.start("alice", 30, key="call", ttl_s=600)
    meter.charge("alice", session.id, 10, key="m1")
    meter.ledger.capture("alice", hold.id, 20)
    assert view(meter, session.id) == ("open", 30, 10, 20)
    assert available(meter) == (70, 50)


def test_refusals_change_nothing(meter: UsageMeter) -> None:
    meter.ledger.clawback("bob", 1, key="debt-bob")
    before = state(meter.ledger)
    cases: list[tuple[type[Exception], object]] = [
        (InvalidAmount, lambda: meter.start("alice", 10, key="a", ttl_s=0)),
        (InvalidAmount, lambda: meter.start("alice", 10, key="b", ttl_s=86_401)),
        (InvalidAmount, lambda: meter.start("alice", 0, key="c", ttl_s=60)),
        (InsufficientBalance, lambda: meter.start("alice", 101, key="d", ttl_s=60)),
        (AccountInDebt, lambda: meter.start("bob", 1, key="e", ttl_s=60)),
        (UsageSessionNotFound, lambda: meter.charge("alice", "txn_" + "0" * 32, 1, key="f")),
        (UsageSessionNotFound, lambda: meter.charge("alice", "../x", 1, key="g")),
        (UsageSessionNotFound, lambda: meter.session("alice", "nope")),
    ]
    for error, attempt in cases:
        with pytest.raises(error):
            attempt()  # type: ignore[operator]
    assert state(meter.ledger) == before


def test_the_start_key_returns_the_same_session(meter: UsageMeter) -> None:
    first = meter.start("alice", 30, key="call", ttl_s=600)
    assert meter.start("alice", 30, key="call", ttl_s=600) == first
    with pytest.raises(IdempotencyConflict):
        meter.start("alice", 31, key="call", ttl_s=600)
    assert isinstance(first, JournalTransaction) and available(meter) == (100, 70)
