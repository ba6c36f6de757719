"""Sessions and verified emails in Firestore; mixed into FirestoreStore.

Each session is one document keyed by its id (a hash of the cookie's secret):
reads and writes by id need no index, and clients get no access (rules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from services.session_model import SessionRecord
from services.store.firestore_deadline import CALL_TIMEOUT_S

T = TypeVar("T")
SESSIONS = "sessions"
USERS = "users"


def _update_if_present(ref: Any, data: dict[str, Any]) -> None:
    # update() refuses a missing document: a session ended meanwhile stays ended.
    try:
        ref.update(data, timeout=CALL_TIMEOUT_S)
    except gexc.NotFound:
        return


class _FirestoreBase(Protocol):
    db: firestore.Client

    def _call(self, work: Callable[[], T]) -> T: ...


class FirestoreSessions:
    def create_session(self: _FirestoreBase, record: SessionRecord) -> None:
        ref = self.db.collection(SESSIONS).document(record.id)
        self._call(lambda: ref.create(record.to_dict(), timeout=CALL_TIMEOUT_S))

    def get_session(self: _FirestoreBase, session_id: str) -> SessionRecord | None:
        ref = self.db.collection(SESSIONS).document(session_id)
        data = self._call(lambda: ref.get(timeout=CALL_TIMEOUT_S)).to_dict()
        return None if data is None else SessionRecord.from_dict(data)

    def update_session(self: _FirestoreBase, record: SessionRecord) -> None:
        ref = self.db.collection(SESSIONS).document(record.id)
        self._call(lambda: _update_if_present(ref, record.to_dict()))

    def delete_session(self: _FirestoreBase, session_id: str) -> None:
        ref = self.db.collection(SESSIONS).document(session_id)
        self._call(lambda: ref.delete(timeout=CALL_TIMEOUT_S))

    def set_user_email(self: _FirestoreBase, user_id: str, email: str) -> None:
        ref = self.db.collection(USERS).document(user_id)
        self._call(lambda: _update_if_present(ref, {"email": email}))
