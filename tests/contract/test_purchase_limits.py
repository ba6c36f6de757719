"""Purchase limits kept by each buyer's record of recent starts, on every store.

The record is what lets checkouts of different buyers run without a shared
range lock; these tests check that it keeps the limits' exact meaning: when a
purchase's state changes after its start, for deployments whose purchases
predate the record, and with starts racing from separate processes.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest

from services.errors import PurchaseLimitReached, StorageError
from services.ledger.model import format_time
from services.payments.model import Purchase, PurchaseLimits, PurchaseState, User
from services.payments.start_rules import MAX_STARTS, StartRecord
from services.store.firestore import FirestoreStore
from services.store.port import Store
from services.store.sqlite import SqliteStore
from tests.contract.conftest import StoreFactory
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = PurchaseLimits(per_hour=5, per_day=20, open_session_s=35 * 60)
PAID, PENDING, FAILED = PurchaseState.PAID, PurchaseState.PENDING, PurchaseState.FAILED


def purchase(
    n: int, at: datetime = NOW, buyer: str = "buyer", state: PurchaseState = PENDING
) -> Purchase:
    return purchase_record(f"pur_{buyer}_{n}", buyer, at, state, session_id=f"cs_{buyer}_{n}")


def forget_records(store: Store) -> None:
    """Drop every buyer's record, as a deployment from before the records has none."""
    if isinstance(store, SqliteStore):
        store._write(lambda conn: conn.execute("DELETE FROM purchase_limits"))
    elif isinstance(store, FirestoreStore):
        for snap in store.db.collection("purchase_limits").stream():
            snap.reference.delete()
    else:
        raise TypeError(f"no records to forget in {type(store).__name__}")


def bought(store: Store, buyer: str) -> int:
    return sum(1 for p in store.iter_purchases() if p.buyer_id == buyer)


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    made = store_factory()
    made.ensure_user(User(id="buyer", created_at=format_time(NOW)), NOW)
    return made


def test_a_checkout_that_fails_after_its_start_frees_its_slot(store: Store) -> None:
    for n in range(5):
        store.start_purchase(purchase(n), LIMITS, NOW)
    with pytest.raises(PurchaseLimitReached):
        store.start_purchase(purchase(5), LIMITS, NOW)
    store.update_purchase("pur_buyer_2", lambda p: p.with_changes("t", state=FAILED))
    assert store.start_purchase(purchase(5), LIMITS, NOW).id == "pur_buyer_5"
    with pytest.raises(PurchaseLimitReached):
        store.start_purchase(purchase(6), LIMITS, NOW)


def test_a_stale_checkout_counts_again_once_paid(store: Store) -> None:
    start = NOW - timedelta(minutes=50)  # past the 35 minutes a checkout stays payable
    for n in range(5):
        store.start_purchase(purchase(n, start), LIMITS, start)
    assert store.start_purchase(purchase(5), LIMITS, NOW).id == "pur_buyer_5"
    store.update_purchase("pur_buyer_0", lambda p: p.with_changes("t", state=PAID))
    for n in range(6, 9):
        store.start_purchase(purchase(n), LIMITS, NOW)
    with pytest.raises(PurchaseLimitReached) as caught:
        store.start_purchase(purchase(9), LIMITS, NOW)
    assert caught.value.retry_after_s == 10 * 60 + 1  # the paid one leaves the hour first


def test_the_first_start_after_deploy_counts_purchases_from_before_the_record(
    store: Store,
) -> None:
    for n in range(4):
        store.start_purchase(purchase(n, NOW - timedelta(minutes=30)), LIMITS, NOW)
    store.start_purchase(purchase(4, NOW - timedelta(minutes=20), state=PAID), None, NOW)
    forget_records(store)
    with pytest.raises(PurchaseLimitReached) as caught:
        store.start_purchase(purchase(5), LIMITS, NOW)
    assert caught.value.retry_after_s == 30 * 60 + 1
    store.update_purchase("pur_buyer_1", lambda p: p.with_changes("t", state=FAILED))
    store.start_purchase(purchase(5), LIMITS, NOW)
    with pytest.raises(PurchaseLimitReached):
        store.start_purchase(purchase(6), LIMITS, NOW)


def test_racing_first_starts_after_deploy_build_one_record(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(2)]
    for n in range(3):
        stores[0].start_purchase(purchase(n, NOW - timedelta(minutes=10)), None, NOW)
    barrier = threading.Barrier(6)

    def attempt(n: int) -> bool:
        barrier.wait()
        try:
            stores[n % 2].start_purchase(purchase(10 + n), LIMITS, NOW)
        except PurchaseLimitReached:
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert results.count(True) == 2
    assert bought(stores[1], "buyer") == 5


def test_the_same_purchase_id_returns_the_stored_purchase_even_at_the_limit(
    store: Store,
) -> None:
    first = store.start_purchase(purchase(0), LIMITS, NOW)
    for n in range(1, 5):
        store.start_purchase(purchase(n), LIMITS, NOW)
    assert store.start_purchase(purchase(0), LIMITS, NOW) == first


def test_a_day_of_abandoned_checkouts_keeps_the_record_bounded() -> None:
    record = StartRecord()
    for n in range(MAX_STARTS + 30):
        at = NOW + timedelta(minutes=5 * n)
        record = record.with_start(purchase(n, at), at)
    assert len(record.starts) <= MAX_STARTS
    assert record.starts[-1].purchase_id == f"pur_buyer_{MAX_STARTS + 29}"


# -- separate processes -------------------------------------------------------------------


def _open(spec: tuple[str, str]) -> Store:
    kind, where = spec
    return SqliteStore(where) if kind == "sqlite" else FirestoreStore(where)


def _spec(store: Store) -> tuple[str, str]:
    if isinstance(store, SqliteStore):
        return "sqlite", store.path
    assert isinstance(store, FirestoreStore)
    return "firestore", str(store.db.project)


def _process_starts(
    spec: tuple[str, str],
    starts: list[Purchase],
    barrier: Barrier,
    out: Queue[list[tuple[str, str]]],
) -> None:
    """One server process: its own store, one thread per start, all released at once."""
    store = _open(spec)

    def attempt(p: Purchase) -> tuple[str, str]:
        barrier.wait(timeout=60)
        try:
            store.start_purchase(p, LIMITS, NOW)
        except PurchaseLimitReached:
            return p.buyer_id, "refused"
        except StorageError:
            return p.buyer_id, "error"
        return p.buyer_id, "started"

    try:
        with ThreadPoolExecutor(len(starts)) as pool:
            out.put(list(pool.map(attempt, starts)))
    finally:
        store.close()


def test_starts_racing_from_two_processes_never_pass_the_limit(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    # 6 buyers start 2 checkouts each; "busy" had 4 this hour; "eager" tries 8 at once.
    plan = [purchase(n, buyer=f"b{b}") for b in range(6) for n in range(2)]
    plan += [purchase(n, buyer="busy") for n in range(10, 12)]
    plan += [purchase(n, buyer="eager") for n in range(8)]
    for n in range(4):
        store.start_purchase(purchase(n, NOW - timedelta(minutes=10), buyer="busy"), LIMITS, NOW)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(len(plan)), context.Queue()
    halves = [plan[0::2], plan[1::2]]
    workers = [
        context.Process(target=_process_starts, args=(_spec(store), half, barrier, out))
        for half in halves
    ]
    for worker in workers:
        worker.start()
    results = [*out.get(timeout=120), *out.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    started = Counter(buyer for buyer, outcome in results if outcome == "started")
    errors = Counter(buyer for buyer, outcome in results if outcome == "error")
    slots = {**{f"b{b}": 2 for b in range(6)}, "busy": 1, "eager": 5}
    for buyer, free in slots.items():
        assert started[buyer] <= free, buyer
        if not errors[buyer]:
            assert started[buyer] == free, buyer
    assert bought(store, "eager") == started["eager"] <= 5
    assert bought(store, "busy") == 4 + started["busy"] <= 5
