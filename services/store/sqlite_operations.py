"""SQLite tables for the operator's dashboard: failed events, the audit trail, and lookups."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from services.errors import AlertNotFound
from services.ledger.model import format_time
from services.operations.model import AuditRecord, EventFailure
from services.payments.model import Purchase, PurchaseState, SecurityAlert, User
from services.store.sqlite_purchases import _SqliteBase

PURCHASE_BODY = "SELECT body FROM purchases WHERE "
AUDIT_NEWEST = "SELECT body FROM audit ORDER BY created_at DESC, id LIMIT ?"
AUDIT_OF_TARGET = "SELECT body FROM audit WHERE target = ? ORDER BY created_at DESC, id LIMIT ?"


def _purchases(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[Purchase]:
    rows = conn.execute(PURCHASE_BODY + where, args).fetchall()
    return [Purchase.from_dict(json.loads(row[0])) for row in rows]


def _failure(row: sqlite3.Row) -> EventFailure:
    data = dict(row)
    data["event_id"] = data.pop("id")
    return EventFailure.from_dict(data)


def _load_audit(conn: sqlite3.Connection, audit_id: str) -> AuditRecord | None:
    row = conn.execute("SELECT body FROM audit WHERE id = ?", (audit_id,)).fetchone()
    return None if row is None else AuditRecord.from_dict(json.loads(row[0]))


class SqliteOperations:
    """Mixed into SqliteStore."""

    def purchases_created(
        self: _SqliteBase, start: datetime, end: datetime, state: PurchaseState
    ) -> list[Purchase]:
        where = "state = ? AND created_at >= ? AND created_at < ? ORDER BY created_at, id"
        with self._guard():
            return _purchases(
                self._conn(), where, (str(state), format_time(start), format_time(end))
            )

    def purchases_in_state(self: _SqliteBase, state: PurchaseState, limit: int) -> list[Purchase]:
        where = "state = ? ORDER BY created_at DESC, id LIMIT ?"
        with self._guard():
            return _purchases(self._conn(), where, (str(state), limit))

    def purchases_of_user(self: _SqliteBase, user_id: str, limit: int) -> list[Purchase]:
        where = "user_id = ? ORDER BY created_at DESC, id LIMIT ?"
        with self._guard():
            return _purchases(self._conn(), where, (user_id, limit))

    def find_user_by_email(self: _SqliteBase, email: str) -> User | None:
        with self._guard():
            row = (
                self._conn()
                .execute("SELECT body FROM users WHERE json_extract(body, '$.email') = ?", (email,))
                .fetchone()
            )
        return None if row is None else User.from_dict(json.loads(row[0]))

    def record_event_failure(
        self: _SqliteBase, event_id: str, event_type: str, error: str, now: datetime
    ) -> None:
        stamp = format_time(now)
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO event_failures VALUES (?, ?, ?, 1, ?, ?, NULL)"
                " ON CONFLICT (id) DO UPDATE SET type = excluded.type, error = excluded.error,"
                " attempts = attempts + 1, last_at = excluded.last_at, resolved_at = NULL",
                (event_id, event_type, error, stamp, stamp),
            )
        )

    def resolve_event_failure(self: _SqliteBase, event_id: str, now: datetime) -> None:
        # Nearly every event never failed: find that out without taking the write lock.
        open_failure = "SELECT 1 FROM event_failures WHERE id = ? AND resolved_at IS NULL"
        with self._guard():
            if self._conn().execute(open_failure, (event_id,)).fetchone() is None:
                return
        self._write(
            lambda conn: conn.execute(
                "UPDATE event_failures SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
                (format_time(now), event_id),
            )
        )

    def list_event_failures(self: _SqliteBase, limit: int) -> list[EventFailure]:
        with self._guard():
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM event_failures WHERE resolved_at IS NULL"
                    " ORDER BY last_at DESC, id LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [_failure(row) for row in rows]

    def acknowledge_alert(
        self: _SqliteBase, alert_id: str, admin_id: str, now: datetime
    ) -> SecurityAlert:
        def work(conn: sqlite3.Connection) -> SecurityAlert:
            row = conn.execute(
                "SELECT body FROM security_alerts WHERE id = ?", (alert_id,)
            ).fetchone()
            if row is None:
                raise AlertNotFound(f"no security alert {alert_id}")
            alert = SecurityAlert.from_dict(json.loads(row[0]))
            if alert.acknowledged_at is not None:
                return alert
            data = {**alert.to_dict(), "acknowledged_by": admin_id}
            data["acknowledged_at"] = format_time(now)
            conn.execute(
                "UPDATE security_alerts SET body = ?, acknowledged_at = ? WHERE id = ?",
                (json.dumps(data, sort_keys=True), data["acknowledged_at"], alert_id),
            )
            return SecurityAlert.from_dict(data)

        return self._write(work)

    def add_audit(self: _SqliteBase, record: AuditRecord) -> AuditRecord:
        def work(conn: sqlite3.Connection) -> AuditRecord:
            conn.execute(
                "INSERT OR IGNORE INTO audit VALUES (?, ?, ?, ?)",
                (
                    record.id,
                    record.target,
                    record.created_at,
                    json.dumps(record.to_dict(), sort_keys=True),
                ),
            )
            return _load_audit(conn, record.id) or record

        return self._write(work)

    def get_audit(self: _SqliteBase, audit_id: str) -> AuditRecord | None:
        with self._guard():
            return _load_audit(self._conn(), audit_id)

    def list_audit(self: _SqliteBase, limit: int, target: str | None = None) -> list[AuditRecord]:
        sql, args = (
            (AUDIT_NEWEST, (limit,)) if target is None else (AUDIT_OF_TARGET, (target, limit))
        )
        with self._guard():
            rows = self._conn().execute(sql, args).fetchall()
        return [AuditRecord.from_dict(json.loads(row[0])) for row in rows]
