"""On the emulator, a checkout start holds no lock another buyer's start needs.

Buyer A's start is held inside its transaction, after its reads and before its
commit (its locks taken); buyer B's start, from another store object (another
process's client), must finish meanwhile. A returning buyer's start is one
batched read and one commit, without a query.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.rpc_bench import RpcCounter
from services.payments.model import Purchase, PurchaseLimits
from services.payments.start_rules import StartRecord
from services.store import firestore_purchases
from services.store.firestore import FirestoreStore
from services.store.firestore_client import open_client
from services.store.port import Store
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def project(firestore_emulator: FirestoreEmulator) -> Iterator[str]:
    name = f"demo-starts-{uuid.uuid4().hex[:8]}"
    yield name
    firestore_emulator.clear(name)


def purchase(n: int, buyer: str) -> Purchase:
    return purchase_record(f"pur_{buyer}_{n}", buyer, NOW)


def test_another_buyers_start_finishes_while_one_is_held_in_its_transaction(
    project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first: Store = FirestoreStore(project)
    second: Store = FirestoreStore(project)
    for buyer in ("ann", "bob"):  # records exist: the starts below are the steady case
        first.start_purchase(purchase(0, buyer), PurchaseLimits(), NOW)
    inside, release = threading.Event(), threading.Event()
    insert = firestore_purchases._FirestoreStart.insert

    def held_insert(self: Any, p: Purchase, record: StartRecord | None) -> None:
        if p.buyer_id == "ann":
            inside.set()
            assert release.wait(timeout=30)
        insert(self, p, record)

    monkeypatch.setattr(firestore_purchases._FirestoreStart, "insert", held_insert)
    held = threading.Thread(
        target=first.start_purchase, args=(purchase(1, "ann"), PurchaseLimits(), NOW)
    )
    held.start()
    try:
        assert inside.wait(timeout=30)
        assert second.start_purchase(purchase(1, "bob"), PurchaseLimits(), NOW).id == "pur_bob_1"
        assert held.is_alive()  # bob's start did not wait for ann's commit
    finally:
        release.set()
        held.join(timeout=30)
    assert second.get_purchase("pur_ann_1") is not None
    first.close()
    second.close()


def test_a_returning_buyers_start_is_one_batched_read_and_one_commit(project: str) -> None:
    counter = RpcCounter()
    store: Store = FirestoreStore(project, client=open_client(project, counter))
    store.start_purchase(purchase(0, "ann"), PurchaseLimits(), NOW)
    with counter.measuring() as kinds:
        store.start_purchase(purchase(1, "ann"), PurchaseLimits(), NOW)
    # The batched read begins the transaction (services/store/firestore_transaction.py).
    assert dict(kinds) == {"BatchGetDocuments": 1, "Commit": 1}
    store.close()
