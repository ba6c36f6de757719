"""The storage port's sessions, on SQLite and the Firestore emulator alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from services.payments.model import User
from services.session_model import SessionRecord
from services.store.port import Store
from tests.contract.conftest import StoreFactory

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(session_id: str = "a" * 64) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        user_id="uid-1",
        source="firebase",
        created_at="2026-01-02T03:04:05.000000Z",
        expires_at="2026-01-02T15:04:05.000000Z",
        checked_at="2026-01-02T03:04:05.000000Z",
        signed_in_at=1767323045,
        admin_claim=True,
        operator_email="ops@example.com",
    )


def test_a_session_is_stored_read_and_ended_for_every_store_object(
    store: Store, store_factory: StoreFactory
) -> None:
    store.create_session(record())
    other = store_factory()  # another server process
    assert other.get_session("a" * 64) == record()
    store.delete_session("a" * 64)
    assert other.get_session("a" * 64) is None
    store.delete_session("a" * 64)  # ending it twice is harmless


def test_an_update_never_brings_back_an_ended_session(store: Store) -> None:
    store.create_session(record())
    checked = replace(record(), checked_at="2026-01-02T03:09:05.000000Z", admin_claim=False)
    store.update_session(checked)
    assert store.get_session("a" * 64) == checked
    store.delete_session("a" * 64)
    store.update_session(checked)
    assert store.get_session("a" * 64) is None


def test_the_users_email_is_replaced_and_nothing_else(store: Store) -> None:
    store.ensure_user(User(id="uid-1", username="pat"), NOW)
    store.set_user_email("uid-1", "pat@example.com")
    stored = store.get_user("uid-1")
    assert stored is not None
    assert (stored.email, stored.username) == ("pat@example.com", "pat")
    store.set_user_email("uid-missing", "x@example.com")
    assert store.get_user("uid-missing") is None
