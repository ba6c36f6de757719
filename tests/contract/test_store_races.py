"""Read-then-write races on stored state, forced, on both stores.

Refunds that overtake their payment, delivered concurrently: two deliveries
of cumulative refunds for one payment intent (500, then 999 in all) arrive
before any purchase knows that payment intent. Whatever their interleaving,
the larger amount must be kept and applied when the purchase is paid.
``RacingStore`` forces the interleaving that lost it: both deliveries read
what is kept before either writes, and the smaller one writes last. A keeper
that reads and writes inside one store transaction never goes through those
two methods, so the forcing cannot affect it.

Settings updated by many writers, the outcome recorded for an event delivered
twice, and a failure recorded after another delivery processed the event.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytest

from config.catalog import load_catalog
from services.errors import StorageContention, StorageError
from services.ledger.model import utc_now
from services.payments.events import EventProcessor
from services.payments.fulfilment import Fulfilment
from services.payments.model import User
from services.payments.purchase_rules import NOT_HANDLED, PaidResult
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.records import purchase_record

StoreFactory = Callable[[], Store]
INTENT = "pi_racing_refunds"
PAUSE = 2.0  # seconds a forced step waits for the other thread before going on alone


class RacingStore:
    """A store that makes two refund deliveries read, then write in the losing order."""

    def __init__(self, inner: Store, both_read: threading.Barrier, larger: threading.Event):
        self.inner = inner
        self.both_read = both_read
        self.larger_written = larger

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_setting(self, name: str) -> dict[str, Any] | None:
        value = self.inner.get_setting(name)
        with contextlib.suppress(threading.BrokenBarrierError):
            self.both_read.wait(PAUSE)
        return value

    def put_setting(self, name: str, value: dict[str, Any]) -> None:
        if value.get("amount_refunded") == 500:
            self.larger_written.wait(PAUSE)
        self.inner.put_setting(name, value)
        if value.get("amount_refunded") == 999:
            self.larger_written.set()


def fulfilment(store: Store) -> Fulfilment:
    return Fulfilment(store, TokenLedger(store), load_catalog(None), SecurityService(store))


def charge(amount_refunded: int) -> dict[str, Any]:
    return {
        "object": "charge",
        "id": "ch_racing_refunds",
        "payment_intent": INTENT,
        "amount": 999,
        "amount_refunded": amount_refunded,
        "currency": "usd",
    }


def deliver_concurrently(store_factory: StoreFactory) -> None:
    both_read, larger = threading.Barrier(2), threading.Event()
    outcomes: list[str] = []

    def deliver(amount: int) -> None:
        racing = cast(Store, RacingStore(store_factory(), both_read, larger))
        outcomes.append(fulfilment(racing).clawbacks.refunded(charge(amount)))

    threads = [threading.Thread(target=deliver, args=(amount,)) for amount in (500, 999)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["deferred", "deferred"]


def test_the_larger_of_two_racing_early_refunds_is_kept(store_factory: StoreFactory) -> None:
    store = store_factory()
    now = utc_now()
    store.ensure_user(User(id="racer", username="racer"), now)
    purchase = store.start_purchase(purchase_record("pur_racer", "racer", now), None, now)
    deliver_concurrently(store_factory)

    paid = fulfilment(store).credit(purchase, INTENT)

    stored = store.get_purchase(paid.id)
    assert stored is not None
    assert (stored.refunded_amount, stored.refunded_tokens) == (999, 110)
    assert store.get_account("racer").balance == 0


def test_update_setting_is_atomic_across_store_objects(store_factory: StoreFactory) -> None:
    """Writers on their own store objects each add their own mark: no acknowledged one is lost.

    Contention may refuse an update (a retryable StorageError). On Firestore a commit
    whose answer was lost can also be reported as failed and yet be applied,
    which is why callers' changes are idempotent (as adding a mark to a set is):
    every acknowledged mark is kept, and nothing but the attempted marks appears.
    """
    writers, rounds = 4, 3
    gate = threading.Barrier(writers)
    acknowledged: list[str] = []

    stores = [store_factory() for _ in range(writers)]  # opened before the race starts

    def work(writer: int) -> None:
        store = stores[writer]
        gate.wait(30)
        for n in range(rounds):
            mark = f"{writer}-{n}"

            def add(kept: dict[str, Any] | None, mark: str = mark) -> dict[str, Any]:
                return {"marks": sorted({*(kept or {}).get("marks", []), mark})}

            try:
                store.update_setting("marks", add)
            except StorageError:  # contention, or no answer within the call's budget
                continue
            acknowledged.append(mark)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert acknowledged
    kept = set((store_factory().get_setting("marks") or {})["marks"])
    assert set(acknowledged) <= kept
    assert kept <= {f"{w}-{n}" for w in range(writers) for n in range(rounds)}


def test_update_setting_that_changes_nothing_writes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.update_setting("absent", lambda kept: None) is None
    assert store.get_setting("absent") is None
    store.put_setting("kept", {"a": 1})
    assert store.update_setting("kept", lambda kept: None) == {"a": 1}


# -- event records ------------------------------------------------------------------------


def test_the_first_outcome_recorded_for_an_event_stays(store_factory: StoreFactory) -> None:
    """Two deliveries of one event may both finish: the record keeps the first answer."""
    store, now = store_factory(), utc_now()
    assert store.event_outcome("evt_twice") is None
    store.record_event("evt_twice", "charge.refunded", "refund_clawed_back", now)
    store_factory().record_event("evt_twice", "charge.refunded", "refund_unchanged", now)
    assert store.event_outcome("evt_twice") == "refund_clawed_back"
    assert store.event_processed("evt_twice")


class Handler:
    """Stands in for Fulfilment.handle_event: runs ``action`` with the event."""

    def __init__(self, action: Callable[[Mapping[str, Any]], str]) -> None:
        self.action = action

    def handle_event(self, event: Mapping[str, Any]) -> str:
        return self.action(event)

    def paid_event(self, event: Mapping[str, Any]) -> PaidResult:
        return NOT_HANDLED  # every event takes handle_event's path


def processor(store: Store, action: Callable[[Mapping[str, Any]], str]) -> EventProcessor:
    return EventProcessor(store, cast(Fulfilment, Handler(action)))


def test_a_delivery_that_fails_after_another_succeeded_leaves_no_open_failure(
    store_factory: StoreFactory,
) -> None:
    """Delivery B checks the event id, delivery A processes it in full, then B fails.

    B's failure record must not stay open: the event is processed, Stripe's next
    retry is answered as a duplicate and would never resolve it.
    """
    event = {
        "id": "evt_raced",
        "type": "checkout.session.completed",
        "livemode": False,
        "data": {"object": {}},
    }
    first = processor(store_factory(), lambda e: "paid")

    def overtaken(e: Mapping[str, Any]) -> str:
        assert first.process(e).outcome == "paid"  # A runs between B's check and B's failure
        raise StorageContention("contention on the purchase")

    store = store_factory()
    with pytest.raises(StorageContention):
        processor(store, overtaken).process(event)
    assert store.event_outcome("evt_raced") == "paid"
    assert [f.event_id for f in store.list_event_failures(10)] == []
