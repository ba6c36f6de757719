"""Firestore RPCs of a paid event and of balance and history reads, counted on the wire
by bench.rpc_bench's interceptor.

A count, not a timing: a paid event is one event-record get, then one
transaction of one batched read (which also begins it) and one commit; a
redelivered processed event is the get alone; a balance read is one batched read; a
history page is one batched read of the account and one query of its entries as of
that read's moment.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from bench.rpc_bench import RpcCounter
from config.catalog import load_catalog
from services.payments.events import EventProcessor
from services.payments.fulfilment import Fulfilment
from services.security import SecurityService
from services.store.firestore import FirestoreStore
from services.store.firestore_client import open_client
from services.tokens import TokenLedger
from tests.contract.test_paid_event import TOKENS, Shop
from tests.support.firestore_emulator import FirestoreEmulator

PROJECT = "demo-paid-rpcs"
PAID_EVENT_RPCS, REDELIVERED_RPCS, BALANCE_RPCS = 3, 1, 1
HISTORY_RPCS = {"BatchGetDocuments": 1, "RunQuery": 1}


@pytest.fixture
def thread_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every thread started from now on, in this process."""
    started: list[str] = []
    start = threading.Thread.start

    def counted_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    return started


@pytest.fixture
def counted(firestore_emulator: FirestoreEmulator) -> Iterator[tuple[Shop, RpcCounter]]:
    counter = RpcCounter()
    store = FirestoreStore(PROJECT, client=open_client(PROJECT, counter))
    ledger = TokenLedger(store)
    fulfilment = Fulfilment(store, ledger, load_catalog(None), SecurityService(store))
    yield Shop(store, ledger, EventProcessor(store, fulfilment), uuid.uuid4().hex[:10]), counter
    store.close()


def test_a_paid_event_costs_at_most_3_rpcs_and_a_redelivery_1(
    counted: tuple[Shop, RpcCounter],
) -> None:
    shop, counter = counted
    buyer = shop.user("buyer")
    paid = shop.paid(shop.checkout(buyer, "a"))
    with counter.measuring() as first:
        assert shop.events.process(paid).outcome == "paid"
    with counter.measuring() as again:
        assert shop.events.process(paid).duplicate
    assert sum(first.values()) <= PAID_EVENT_RPCS, first
    assert sum(again.values()) == REDELIVERED_RPCS, again
    assert shop.ledger.balance(buyer).balance == TOKENS


def test_a_balance_read_costs_1_rpc(counted: tuple[Shop, RpcCounter]) -> None:
    shop, counter = counted
    buyer = shop.user("reader")
    assert shop.events.process(shop.paid(shop.checkout(buyer, "b"))).outcome == "paid"
    with counter.measuring() as read:
        balance = shop.ledger.balance(buyer).balance
    assert balance == TOKENS
    assert dict(read) == {"BatchGetDocuments": BALANCE_RPCS}, read


def test_a_history_page_costs_a_batched_read_and_a_query(counted: tuple[Shop, RpcCounter]) -> None:
    shop, counter = counted
    buyer = shop.user("historian")
    assert shop.events.process(shop.paid(shop.checkout(buyer, "c"))).outcome == "paid"
    with counter.measuring() as read:
        page = shop.ledger.history(buyer)
    assert [(e.amount, e.balance_after) for e in page.entries] == [(TOKENS, TOKENS)]
    assert dict(read) == HISTORY_RPCS, read


def test_streamed_answers_are_read_on_the_calling_thread(
    counted: tuple[Shop, RpcCounter], thread_starts: list[str]
) -> None:
    """A batched read or a query is a streamed RPC, for which gRPC would start a thread
    each time (to move the answers to the caller) unless the channel says otherwise."""
    shop, counter = counted
    buyer = shop.user("quiet")
    paid = shop.paid(shop.checkout(buyer, "d"))
    thread_starts.clear()
    with counter.measuring() as rpcs:
        assert shop.events.process(paid).outcome == "paid"
        assert [e.amount for e in shop.ledger.history(buyer).entries] == [TOKENS]
    assert rpcs["BatchGetDocuments"] + rpcs["RunQuery"] >= 3, rpcs
    assert thread_starts == []
