"""The purchase side of the storage contract, on every store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from services.errors import (
    AccountNotFound,
    PurchaseLimitReached,
    PurchaseNotFound,
    StorageContention,
    StorageUnavailable,
    UsernameTaken,
)
from services.ledger.model import JournalTransaction, Operation, OpKind, TxnType, format_time
from services.ledger.rules import validate
from services.payments.model import Purchase, PurchaseLimits, PurchaseState, SecurityAlert, User
from services.store.port import Store
from tests.contract.conftest import StoreFactory
from tests.support.records import purchase_record

ATTEMPTS = 3
T = TypeVar("T")


def retrying(call: Callable[[], T]) -> T:
    """``call``, retried on a retryable 503 as a caller would: two clients rewriting one
    document deadlock on the emulator, which breaks the tie only after a wait, and a
    call out of time answers 503. The calls retried here are idempotent."""
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except (StorageContention, StorageUnavailable):
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = PurchaseLimits(per_hour=5, per_day=20, open_session_s=35 * 60)


def purchase(
    n: int, at: datetime = NOW, buyer: str = "buyer", state: PurchaseState = PurchaseState.PENDING
) -> Purchase:
    return purchase_record(f"pur_{buyer}_{n}", buyer, at, state, session_id=f"cs_{buyer}_{n}")


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    made = store_factory()
    made.ensure_user(User(id="buyer", email="b@example.com", created_at=format_time(NOW)), NOW)
    return made


def test_ensure_user_creates_the_user_and_the_account_once(store: Store) -> None:
    user = User(id="ann", email="ann@example.com", username="Ann", created_at=format_time(NOW))
    assert store.ensure_user(user, NOW) == user
    assert store.ensure_user(User(id="ann", username="other"), NOW) == user
    assert store.get_account("ann").balance == 0
    assert store.get_user("nobody") is None


def test_usernames_are_unique_ignoring_case(store: Store) -> None:
    store.ensure_user(User(id="ann", username="Ann"), NOW)
    with pytest.raises(UsernameTaken):
        store.ensure_user(User(id="bob", username="aNN"), NOW)
    assert store.get_user("bob") is None


def test_the_customer_id_is_set_once(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        stored = set(pool.map(lambda i: store.set_customer_id("buyer", f"cus_{i}"), range(8)))
    assert len(stored) == 1
    user = store.get_user("buyer")
    assert user is not None and user.stripe_customer_id in stored


def test_the_sixth_purchase_in_an_hour_is_refused_with_when_to_retry(store: Store) -> None:
    for n in range(5):
        paid = purchase(n, NOW - timedelta(minutes=50 - n), state=PurchaseState.PAID)
        store.start_purchase(paid, LIMITS, NOW)
    with pytest.raises(PurchaseLimitReached) as caught:
        store.start_purchase(purchase(9), LIMITS, NOW)
    assert caught.value.retry_after_s == 10 * 60 + 1  # the oldest leaves the hour in 10 minutes
    assert store.get_purchase("pur_buyer_9") is None


def test_failed_expired_and_stale_checkouts_do_not_count(store: Store) -> None:
    store.start_purchase(purchase(0, NOW - timedelta(minutes=50)), LIMITS, NOW)  # stale pending
    for n, state in enumerate([PurchaseState.FAILED, PurchaseState.EXPIRED] * 2, start=1):
        store.start_purchase(purchase(n, state=state), LIMITS, NOW)
    for n in range(10, 15):
        store.start_purchase(purchase(n), LIMITS, NOW)
    with pytest.raises(PurchaseLimitReached):
        store.start_purchase(purchase(20), LIMITS, NOW)


def test_twenty_a_day(store: Store) -> None:
    for n in range(20):
        at = NOW - timedelta(hours=23, minutes=n)
        store.start_purchase(purchase(n, at, state=PurchaseState.PAID), None, NOW)
    with pytest.raises(PurchaseLimitReached, match="per day"):
        store.start_purchase(purchase(99), LIMITS, NOW)


def test_concurrent_checkouts_cannot_pass_the_limit(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(2)]
    stores[0].ensure_user(User(id="buyer"), NOW)
    barrier = threading.Barrier(10)

    def attempt(n: int) -> bool:
        barrier.wait()
        try:
            retrying(lambda: stores[n % 2].start_purchase(purchase(n), LIMITS, NOW))
        except PurchaseLimitReached:
            return False
        return True

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(attempt, range(10)))
    assert results.count(True) == 5


def test_no_limits_for_purchases_already_paid(store: Store) -> None:
    for n in range(8):
        store.start_purchase(purchase(n, state=PurchaseState.PAID), None, NOW)
    assert store.get_purchase("pur_buyer_7") is not None


def test_purchases_are_found_by_session_and_payment_intent(store: Store) -> None:
    stored = store.start_purchase(purchase(1), LIMITS, NOW)
    assert store.start_purchase(purchase(1), LIMITS, NOW) == stored
    updated = store.update_purchase(
        stored.id, lambda p: p.with_changes("later", payment_intent_id="pi_1")
    )
    assert store.find_purchase(session_id="cs_buyer_1") == updated
    assert store.find_purchase(payment_intent_id="pi_1") == updated
    assert store.find_purchase(session_id="cs_none") is None
    assert store.update_purchase(stored.id, lambda p: None) == updated
    with pytest.raises(PurchaseNotFound):
        store.update_purchase("pur_missing", lambda p: p)


def test_each_lookup_follows_the_field_it_finds_by_through_changes(store: Store) -> None:
    """A change of one field moves the purchase in that field's lookup and leaves the
    others finding it (SQLite rewrites only the indexed columns that changed)."""
    store.ensure_user(User(id="friend", created_at=format_time(NOW)), NOW)
    stored = store.start_purchase(purchase(1), LIMITS, NOW)
    steps: list[dict[str, Any]] = [
        {"payment_intent_id": "pi_1"},
        {"state": PurchaseState.PAID},
        {"payment_intent_id": "pi_2"},
        {"user_id": "friend"},
        {"session_id": "cs_later"},
    ]
    for step in steps:

        def change(p: Purchase, step: dict[str, Any] = step) -> Purchase:
            return p.with_changes("later", **step)

        now = store.update_purchase(stored.id, change)
        assert store.find_purchase(session_id=now.session_id or "") == now
        if now.payment_intent_id:
            assert store.find_purchase(payment_intent_id=now.payment_intent_id) == now
        assert [p.id for p in store.purchases_in_state(now.state, 10)] == [now.id]
        assert [p.id for p in store.purchases_of_user(now.user_id, 10)] == [now.id]
    assert store.find_purchase(payment_intent_id="pi_1") is None
    assert store.find_purchase(session_id="cs_buyer_1") is None
    assert store.purchases_in_state(PurchaseState.PENDING, 10) == []
    assert store.purchases_of_user("buyer", 10) == []


def test_concurrent_updates_are_not_lost(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(2)]
    stores[0].start_purchase(purchase(1), None, NOW)

    def mark(n: int) -> Callable[[Purchase], Purchase]:
        def change(p: Purchase) -> Purchase:
            return (
                p if f"m{n}" in p.followed else p.with_changes("t", followed=[*p.followed, f"m{n}"])
            )

        return change

    def bump(n: int) -> None:
        retrying(lambda: stores[n % 2].update_purchase("pur_buyer_1", mark(n)))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(bump, range(6)))
    final = stores[1].get_purchase("pur_buyer_1")
    assert final is not None and sorted(final.followed) == [f"m{n}" for n in range(6)]


def test_events_and_alerts(store: Store) -> None:
    assert not store.event_processed("evt_1")
    store.record_event("evt_1", "checkout.session.completed", "paid", NOW)
    store.record_event("evt_1", "checkout.session.completed", "paid", NOW)
    assert store.event_processed("evt_1")
    for n in range(3):
        store.add_alert(
            SecurityAlert(
                id=f"alert_{n}",
                type="limit_reached",
                severity="info",
                details={"n": n},
                created_at=format_time(NOW + timedelta(seconds=n)),
            )
        )
    assert [a.details["n"] for a in store.list_alerts(limit=2)] == [2, 1]


def test_a_credit_and_its_purchase_change_together_once(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(2)]
    stores[0].ensure_user(User(id="buyer"), NOW)
    stores[0].start_purchase(purchase(1), None, NOW)
    op = validate(Operation(OpKind.CREDIT, "purchase:pur_buyer_1", "buyer", 110, TxnType.PURCHASE))

    def build(p: Purchase) -> Operation | None:
        return None if p.state is PurchaseState.PAID else op

    def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
        if txn is None:
            return None
        return p.with_changes("t", state=PurchaseState.PAID, credit_txn_id=txn.id)

    def fulfil(n: int) -> JournalTransaction | None:
        txn, _ = stores[n % 2].apply_for_purchase("pur_buyer_1", ("buyer",), build, mark, NOW)
        return txn

    with ThreadPoolExecutor(8) as pool:
        credited = [txn for txn in pool.map(fulfil, range(8)) if txn is not None]
    assert len(credited) == 1  # the others saw the purchase paid, inside their transaction
    final = stores[0].get_purchase("pur_buyer_1")
    assert final is not None
    assert (final.state, final.credit_txn_id) == (PurchaseState.PAID, credited[0].id)
    assert stores[1].get_account("buyer").balance == 110


def test_a_refused_credit_leaves_the_purchase_alone(store: Store) -> None:
    store.start_purchase(purchase(1), None, NOW)
    op = validate(Operation(OpKind.CREDIT, "k", "ghost", 5, TxnType.PURCHASE))
    with pytest.raises(AccountNotFound):
        store.apply_for_purchase(
            "pur_buyer_1", ("ghost",), lambda p: op, lambda p, t: p.with_changes("x", tokens=1), NOW
        )
    stored = store.get_purchase("pur_buyer_1")
    assert stored is not None and stored.tokens == 110
