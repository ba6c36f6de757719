"""Server-side sessions: the cookie holds a random secret, the store holds the session.

Signing out deletes the record, so every copy of the cookie stops working at
once; a session ends at its absolute lifetime however much it is used; and a
Firebase session asks Firebase again every ``recheck_s`` seconds whether the
user is still enabled, not revoked, and still an admin.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from config.sessions import SessionPolicy
from services.auth import FirebaseUser
from services.errors import NotSignedIn
from services.ledger.model import format_time, parse_time, utc_now
from services.session_model import SessionRecord
from services.store.port import SessionStore

SESSION_ENDED = "the session has ended; sign in again"


class UserStatusSource(Protocol):
    def user_status(self, uid: str) -> FirebaseUser: ...


def session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        policy: SessionPolicy,
        firebase: UserStatusSource | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.policy = policy
        self.firebase = firebase
        self.clock = clock

    def start(
        self,
        user_id: str,
        source: str,
        *,
        signed_in_at: int = 0,
        admin_claim: bool = False,
        operator_email: str | None = None,
    ) -> str:
        """A new session; returns the secret for the cookie (the store keeps its hash)."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        self.store.create_session(
            SessionRecord(
                id=session_id(secret),
                user_id=user_id,
                source=source,
                created_at=format_time(now),
                expires_at=format_time(now + timedelta(seconds=self.policy.lifetime_s)),
                checked_at=format_time(now),
                signed_in_at=signed_in_at,
                admin_claim=admin_claim,
                operator_email=operator_email,
            )
        )
        return secret

    def resolve(self, secret: str) -> SessionRecord:
        """The live session for a cookie's secret; NotSignedIn when it has ended."""
        record = self.store.get_session(session_id(secret))
        if record is None:
            raise NotSignedIn(SESSION_ENDED)
        now = self.clock()
        if now >= parse_time(record.expires_at):
            self.store.delete_session(record.id)
            raise NotSignedIn(SESSION_ENDED)
        if record.source == "firebase" and self._due(record, now):
            return self._recheck(record, now)
        return record

    def end(self, secret: str) -> None:
        self.store.delete_session(session_id(secret))

    def _due(self, record: SessionRecord, now: datetime) -> bool:
        return now - parse_time(record.checked_at) >= timedelta(seconds=self.policy.recheck_s)

    def _recheck(self, record: SessionRecord, now: datetime) -> SessionRecord:
        if self.firebase is None:  # Firebase was configured at sign-in and is not now
            self.store.delete_session(record.id)
            raise NotSignedIn(SESSION_ENDED)
        status = self.firebase.user_status(record.user_id)
        if status.disabled or status.valid_after_s > record.signed_in_at:
            self.store.delete_session(record.id)
            raise NotSignedIn("this account was disabled or signed out everywhere; sign in again")
        fresh = replace(
            record,
            checked_at=format_time(now),
            admin_claim=status.admin_claim,
            operator_email=status.verified_email,
        )
        self.store.update_session(fresh)
        return fresh
