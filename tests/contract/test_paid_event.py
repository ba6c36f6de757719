"""A paid event is read, checked, credited and recorded in one store transaction.

On both stores, through the event processor: the event's metadata only
locates the purchase (the stored one decides), debt and refunds that came
first still follow the credit, a failure record is resolved in the same
commit, and a kill before that commit leaves nothing behind.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from config.catalog import load_catalog
from services import faults
from services.faults import BEFORE_EVENT_RECORD, FaultInjector, parse_spec
from services.ledger.model import TxnType, format_time
from services.payments.checkout import purchase_id_for
from services.payments.events import EventProcessor
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState, User
from services.security import SecurityService
from services.store.port import Store
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from tests.support.purchases import charge_event, event, session_object

TOKENS, PRICE = 110, 999  # the popular pack
T = TypeVar("T")


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after the fault point runs."""


def _kill() -> None:
    raise Killed


@dataclass
class Shop:
    store: Store
    ledger: TokenLedger
    events: EventProcessor
    tag: str

    def now(self) -> datetime:
        return self.ledger.clock()

    def user(self, name: str) -> str:
        user_id = f"{self.tag}-{name}"
        self.store.ensure_user(User(id=user_id, created_at=format_time(self.now())), self.now())
        return user_id

    def checkout(self, user: str, name: str, intent: str | None = None) -> Purchase:
        session_id = f"cs_test_{self.tag}{name}"
        stamp = format_time(self.now())
        record = Purchase(
            id=purchase_id_for(user, session_id),
            buyer_id=user,
            user_id=user,
            pack_id="popular",
            tokens=TOKENS,
            amount=PRICE,
            currency="usd",
            state=PurchaseState.PENDING,
            created_at=stamp,
            updated_at=stamp,
            session_id=session_id,
            payment_intent_id=intent,
        )
        return self.store.start_purchase(record, None, self.now())

    def paid(self, purchase: Purchase, **overrides: Any) -> dict[str, Any]:
        assert purchase.session_id is not None
        obj = session_object(
            purchase.session_id,
            purchase.id,
            purchase.user_id,
            payment_intent=f"pi_{purchase.session_id[-20:]}",
            **overrides,
        )
        return event("checkout.session.completed", obj, event_id=f"evt_{uuid.uuid4().hex}")

    def stored(self, purchase: Purchase) -> Purchase:
        found = self.store.get_purchase(purchase.id)
        assert found is not None
        return found


def shop_on(store: Store) -> Shop:
    ledger = TokenLedger(store)
    fulfilment = Fulfilment(store, ledger, load_catalog(None), SecurityService(store))
    return Shop(store, ledger, EventProcessor(store, fulfilment), uuid.uuid4().hex[:10])


@pytest.fixture
def shop(store: Store) -> Shop:
    return shop_on(store)


def test_a_paid_event_credits_once_and_records_its_outcome(shop: Shop) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    paid = shop.paid(purchase)
    first = shop.events.process(paid)
    assert (first.outcome, first.duplicate) == ("paid", False)
    assert shop.store.event_outcome(str(paid["id"])) == "paid"
    again = shop.events.process(paid)
    assert again.duplicate
    stored = shop.stored(purchase)
    assert stored.state is PurchaseState.PAID and stored.credit_txn_id is not None
    assert stored.payment_intent_id == paid["data"]["object"]["payment_intent"]
    assert shop.ledger.balance(buyer).balance == TOKENS


def test_a_second_event_for_a_paid_purchase_credits_nothing_more(shop: Shop) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    shop.events.process(shop.paid(purchase))
    later = shop.paid(purchase)
    later["type"] = "checkout.session.async_payment_succeeded"
    assert shop.events.process(later).outcome == "paid"
    assert shop.ledger.balance(buyer).balance == TOKENS


def test_metadata_naming_another_purchase_is_reviewed_not_trusted(shop: Shop) -> None:
    buyer = shop.user("buyer")
    other = shop.checkout(buyer, "other")
    purchase = shop.checkout(buyer, "a")
    hinted = shop.paid(purchase, metadata={"purchase_id": other.id, "user_id": buyer})
    assert shop.events.process(hinted).outcome == "needs_review"
    assert shop.stored(purchase).state is PurchaseState.NEEDS_REVIEW
    assert shop.stored(other).state is PurchaseState.PENDING
    assert shop.ledger.balance(buyer).balance == 0


def test_an_event_without_hints_is_found_by_its_session(shop: Shop) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    bare = shop.paid(purchase, metadata={}, client_reference_id=None)
    assert shop.events.process(bare).outcome == "paid"
    assert shop.ledger.balance(buyer).balance == TOKENS


def test_a_wrong_amount_is_reviewed(shop: Shop) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    assert shop.events.process(shop.paid(purchase, amount_total=1)).outcome == "needs_review"
    assert shop.ledger.balance(buyer).balance == 0


def test_a_buyer_in_debt_repays_it_from_the_credit(shop: Shop) -> None:
    buyer = shop.user("buyer")
    shop.ledger.credit(buyer, 50, key=f"{shop.tag}-grant", type=TxnType.GRANT)
    shop.ledger.spend(buyer, 50, key=f"{shop.tag}-spend")
    first = shop.checkout(buyer, "first")
    shop.events.process(shop.paid(first))
    shop.ledger.spend(buyer, TOKENS, key=f"{shop.tag}-spend-all")
    intent = str(shop.stored(first).payment_intent_id)
    shop.events.process(charge_event(intent, PRICE, PRICE))
    assert shop.ledger.balance(buyer).debt == TOKENS
    second = shop.checkout(buyer, "second")
    paid = shop.paid(second)
    assert shop.events.process(paid).outcome == "paid"
    assert shop.store.event_outcome(str(paid["id"])) == "paid"
    assert (shop.ledger.balance(buyer).balance, shop.ledger.balance(buyer).debt) == (0, 0)


def test_a_refund_that_came_first_is_applied_with_the_credit(shop: Shop) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    paid = shop.paid(purchase)
    intent = str(paid["data"]["object"]["payment_intent"])
    refund = charge_event(intent, PRICE, PRICE // 2)
    assert shop.events.process(refund).outcome == "deferred"
    assert shop.events.process(paid).outcome == "paid"
    assert shop.ledger.balance(buyer).balance == TOKENS - TOKENS * (PRICE // 2) // PRICE
    assert shop.stored(purchase).refunded_amount == PRICE // 2


def test_an_earlier_failure_is_resolved_by_the_paid_event(shop: Shop) -> None:
    buyer = shop.user("buyer")
    paid = shop.paid(shop.checkout(buyer, "a"))
    event_id = str(paid["id"])
    shop.store.record_event_failure(event_id, str(paid["type"]), "unavailable", shop.now())
    assert event_id in {f.event_id for f in shop.store.list_event_failures(50)}
    shop.events.process(paid)
    assert event_id not in {f.event_id for f in shop.store.list_event_failures(50)}


def test_a_kill_before_the_commit_leaves_nothing_and_the_retry_credits_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer = shop.user("buyer")
    purchase = shop.checkout(buyer, "a")
    paid = shop.paid(purchase)
    injector = FaultInjector(parse_spec(f"{BEFORE_EVENT_RECORD}:1"), kill=_kill)
    monkeypatch.setattr(faults, "_injector", injector)
    with pytest.raises(Killed):
        shop.events.process(paid)
    assert shop.stored(purchase).state is PurchaseState.PENDING
    assert shop.ledger.balance(buyer).balance == 0
    assert not shop.store.event_processed(str(paid["id"]))
    assert shop.events.process(paid).outcome == "paid"
    assert shop.events.process(paid).duplicate
    assert shop.ledger.balance(buyer).balance == TOKENS


def test_on_sqlite_a_paid_event_is_one_write_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite only (its write transactions), so it is no part of the per-store suite."""
    shop = shop_on(SqliteStore(str(tmp_path / "one-write.db")))
    purchase = shop.checkout(shop.user("buyer"), "a")
    paid = shop.paid(purchase)
    writes: list[str] = []
    write = SqliteStore._write

    def counted(store: SqliteStore, work: Callable[[sqlite3.Connection], T]) -> T:
        writes.append("BEGIN IMMEDIATE")
        return write(store, work)

    monkeypatch.setattr(SqliteStore, "_write", counted)
    assert shop.events.process(paid).outcome == "paid"
    assert shop.events.process(paid).duplicate
    assert len(writes) == 1
    shop.store.close()
