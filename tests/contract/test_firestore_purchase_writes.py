"""On the emulator, a purchase changed in a transaction writes only the fields that changed.

The stored document must still be exactly the purchase: a changed map (refunds)
replaces the stored map whole, a removed entry does not linger, and fields that did
not change stay. The commit carries an update of the changed fields, not a whole
document, which is what keeps a paid event's encoding small.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore

from services.payments.model import Purchase, PurchaseLimits, PurchaseState
from services.store import firestore_purchases
from services.store.firestore import FirestoreStore
from services.store.port import Store
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = "2026-05-01T12:05:00.000000Z"


@pytest.fixture
def store(firestore_emulator: FirestoreEmulator) -> Iterator[Store]:
    project = f"demo-purchase-writes-{uuid.uuid4().hex[:8]}"
    made = FirestoreStore(project)
    yield made
    made.close()
    firestore_emulator.clear(project)


def stored(store: Store, purchase_id: str) -> dict[str, Any]:
    assert isinstance(store, FirestoreStore)
    snap = store.db.collection(firestore_purchases.PURCHASES).document(purchase_id).get()
    return snap.to_dict() or {}


def test_the_stored_purchase_follows_each_change_exactly(store: Store) -> None:
    first = purchase_record("pur_w1", "ann", NOW)
    store.start_purchase(first, PurchaseLimits(), NOW)
    refunds = {"re_1": {"amount": 500, "status": "pending"}, "re_2": {"amount": 1, "status": "x"}}
    store.update_purchase("pur_w1", lambda p: p.with_changes(LATER, refunds=refunds))
    assert stored(store, "pur_w1") == first.with_changes(LATER, refunds=refunds).to_dict()

    kept = {"re_1": {"amount": 500, "status": "succeeded"}}
    changed = store.update_purchase(
        "pur_w1", lambda p: p.with_changes(LATER, state=PurchaseState.PAID, refunds=kept)
    )
    assert stored(store, "pur_w1") == changed.to_dict()
    assert stored(store, "pur_w1")["refunds"] == kept  # re_2 did not linger
    assert Purchase.from_dict(stored(store, "pur_w1")) == changed


def test_a_change_writes_only_the_changed_fields(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.start_purchase(purchase_record("pur_w2", "bob", NOW), PurchaseLimits(), NOW)
    written: list[tuple[list[str], dict[str, Any]]] = []
    add = firestore.Transaction._add_write_pbs

    def spy(transaction: Any, write_pbs: list[Any]) -> Any:
        for pb in write_pbs:  # what the commit will carry, masks and values
            fields = {name: value.string_value for name, value in pb.update.fields.items()}
            written.append((list(pb.update_mask.field_paths), fields))
        return add(transaction, write_pbs)

    monkeypatch.setattr(firestore.Transaction, "_add_write_pbs", spy)
    store.update_purchase("pur_w2", lambda p: p.with_changes(LATER, state=PurchaseState.PAID))
    assert written == [(["state", "updated_at"], {"state": "paid", "updated_at": LATER})]
    assert stored(store, "pur_w2")["state"] == "paid"
