"""What a Firestore debit writes: shards first, the main account document only when
its own fields change.

Credits read the main document; a debit that rewrote it would wait on their reads
while they wait on its reads of the shards (a lock cycle that slowed a spending
recipient's tips sixfold). These check the writes themselves, on the emulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.ledger.model import Operation, OpKind, TxnType
from services.store.firestore import FirestoreStore
from tests.support.firestore_emulator import FirestoreEmulator

PROJECT = "demo-shard-writes"
NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture
def store(firestore_emulator: FirestoreEmulator) -> Iterator[FirestoreStore]:
    store = FirestoreStore(PROJECT)
    yield store
    store.close()


def _user(store: FirestoreStore) -> str:
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    store.open_account(user_id, NOW)
    return user_id


def _credit(store: FirestoreStore, user_id: str, amount: int) -> None:
    key = f"credit-{uuid.uuid4().hex}"
    store.apply(Operation(OpKind.CREDIT, key, user_id, amount, TxnType.GRANT), NOW)


def _spend(store: FirestoreStore, user_id: str, amount: int) -> None:
    key = f"spend-{uuid.uuid4().hex}"
    store.apply(Operation(OpKind.DEBIT, key, user_id, amount, TxnType.SPEND), NOW)


def test_a_spend_from_shards_leaves_the_main_document_alone(store: FirestoreStore) -> None:
    user_id = _user(store)
    for amount in (5, 7, 11):
        _credit(store, user_id, amount)
    main = store.account_ref(user_id)
    before = main.get()
    _spend(store, user_id, 20)
    after = main.get()
    assert after.update_time == before.update_time
    assert after.to_dict() == before.to_dict()
    assert store.get_account(user_id).balance == 3
    assert store.get_account(user_id).seq == 4


def test_a_spend_past_the_shards_takes_the_main_documents_part(store: FirestoreStore) -> None:
    user_id = _user(store)
    store.account_ref(user_id).update({"balance": 50, "seq": 1})  # a balance from before shards
    _credit(store, user_id, 10)
    _spend(store, user_id, 30)
    main = store.account_ref(user_id).get().to_dict() or {}
    assert main["balance"] == 30  # the 10 in shards went first
    shards = [ref.get().to_dict() or {} for ref in store.shard_refs(user_id)]
    assert sum(int(s.get("balance", 0)) for s in shards) == 0
    account = store.get_account(user_id)
    assert (account.balance, account.seq) == (30, 3)


def test_history_orders_by_commit_time_with_each_balance_after(store: FirestoreStore) -> None:
    user_id = _user(store)
    for step in (10, -4, 6, -12, 3):
        if step > 0:
            _credit(store, user_id, step)
        else:
            _spend(store, user_id, -step)
    history = store.list_entries(user_id, 10, None, None)
    assert [e.amount for e in history] == [3, -12, 6, -4, 10]
    assert [e.balance_after for e in history] == [3, 0, 12, 6, 10]
    assert [e.seq for e in history] == [5, 4, 3, 2, 1]
    looked_up = store.get_transaction(history[0].txn_id)
    assert looked_up is not None
    assert [e.balance_after for e in looked_up.entries if e.user_id == user_id] == [3]
