"""Sessions and verified emails in SQLite; mixed into SqliteStore."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from services.payments.model import User
from services.session_model import SessionRecord

T = TypeVar("T")


class _SqliteBase(Protocol):
    def _conn(self) -> sqlite3.Connection: ...

    def _guard(self) -> AbstractContextManager[None]: ...

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T: ...


def _body(record: SessionRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)


class SqliteSessions:
    def create_session(self: _SqliteBase, record: SessionRecord) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO sessions (id, user_id, body) VALUES (?, ?, ?)",
                (record.id, record.user_id, _body(record)),
            )

        self._write(work)

    def get_session(self: _SqliteBase, session_id: str) -> SessionRecord | None:
        with self._guard():
            row = (
                self._conn()
                .execute("SELECT body FROM sessions WHERE id = ?", (session_id,))
                .fetchone()
            )
        return None if row is None else SessionRecord.from_dict(json.loads(row[0]))

    def update_session(self: _SqliteBase, record: SessionRecord) -> None:
        def work(conn: sqlite3.Connection) -> None:
            # UPDATE, not upsert: a session ended meanwhile (sign-out) stays ended.
            conn.execute("UPDATE sessions SET body = ? WHERE id = ?", (_body(record), record.id))

        self._write(work)

    def delete_session(self: _SqliteBase, session_id: str) -> None:
        self._write(lambda conn: conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)))

    def set_user_email(self: _SqliteBase, user_id: str, email: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT body FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                return
            user = User.from_dict(json.loads(row[0]))
            body = json.dumps({**user.to_dict(), "email": email})
            conn.execute("UPDATE users SET body = ? WHERE id = ?", (body, user_id))

        self._write(work)
