"""Stripe event and failure records carry a Timestamp ``expire_at`` for a TTL policy.

Read back raw from the emulator: the value must be a Timestamp (the client hands
one back as a datetime; a string would come back as a string), at least 35 days
after the record was written, past Stripe's 30-day retry window.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from services.store.firestore import FirestoreStore
from services.store.port import Store
from tests.support.firestore_emulator import FirestoreEmulator

KEPT_AT_LEAST = timedelta(days=35)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stores(
    firestore_emulator: FirestoreEmulator,
) -> Iterator[tuple[Store, firestore.Client]]:
    project = f"demo-expiry-{uuid.uuid4().hex[:8]}"
    store: Store = FirestoreStore(project)
    raw = firestore.Client(project=project)
    yield store, raw
    store.close()
    raw.close()  # type: ignore[no-untyped-call]


def _expire_at(raw: firestore.Client, collection: str, doc_id: str) -> object:
    data = raw.collection(collection).document(doc_id).get().to_dict()
    assert data is not None, f"no {collection}/{doc_id}"
    return data.get("expire_at")


def _assert_kept_long_enough(value: object, written_at: datetime) -> None:
    assert isinstance(value, datetime), f"expire_at must be a Timestamp, got {value!r}"
    assert value >= written_at + KEPT_AT_LEAST


def test_event_records_expire_after_stripe_stops_retrying(
    stores: tuple[Store, firestore.Client],
) -> None:
    store, raw = stores
    store.record_event("evt_ttl", "checkout.session.completed", "paid", NOW)
    _assert_kept_long_enough(_expire_at(raw, "stripe_events", "evt_ttl"), NOW)


def test_failure_records_expire_after_their_last_attempt(
    stores: tuple[Store, firestore.Client],
) -> None:
    store, raw = stores
    store.record_event_failure("evt_ttl_fail", "charge.refunded", "StorageUnavailable", NOW)
    _assert_kept_long_enough(_expire_at(raw, "event_failures", "evt_ttl_fail"), NOW)
    later = NOW + timedelta(days=3)
    store.record_event_failure("evt_ttl_fail", "charge.refunded", "StorageUnavailable", later)
    _assert_kept_long_enough(_expire_at(raw, "event_failures", "evt_ttl_fail"), later)
