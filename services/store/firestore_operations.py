"""Firestore collections for the operator's dashboard: ``event_failures/{event id}`` and
``audit/{id}``, and the dashboard's queries on purchases, users and alerts.

Every query here has its composite index in firestore.indexes.json.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.errors import AlertNotFound, StorageUnavailable
from services.ledger.model import format_time
from services.operations.model import AuditRecord, EventFailure
from services.payments.model import Purchase, PurchaseState, SecurityAlert, User
from services.store.firestore_purchases import (
    ALERTS,
    FAILURES,
    PURCHASES,
    USERS,
    _data,
    _doc,
    _FirestoreBase,
    _get,
    create_if_absent,
)

AUDIT = "audit"
# A TTL policy on ``expire_at`` (a Timestamp) deletes failure records this long
# after their last attempt; Stripe stops retrying an event after 30 days.
FAILURE_RETENTION = timedelta(days=35)
DESC = firestore.Query.DESCENDING


def _equal(field: str, value: object) -> FieldFilter:
    return FieldFilter(field, "==", value)


def _purchases(store: _FirestoreBase, query: Any) -> list[Purchase]:
    return [Purchase.from_dict(snap.to_dict() or {}) for snap in store._fetch(query)]


def _newest_alerts(store: _FirestoreBase, limit: int, unacknowledged: bool) -> list[SecurityAlert]:
    query = store.db.collection(ALERTS)
    if unacknowledged:
        query = query.where(filter=_equal("acknowledged_at", None))
    query = query.order_by("created_at", direction=DESC).limit(limit)
    return [SecurityAlert.from_dict(snap.to_dict() or {}) for snap in store._fetch(query)]


class FirestoreOperations:
    """Mixed into FirestoreStore."""

    def purchases_created(
        self: _FirestoreBase, start: datetime, end: datetime, state: PurchaseState
    ) -> list[Purchase]:
        query = (
            self.db.collection(PURCHASES)
            .where(filter=_equal("state", str(state)))
            .where(filter=FieldFilter("created_at", ">=", format_time(start)))
            .where(filter=FieldFilter("created_at", "<", format_time(end)))
            .order_by("created_at")
        )
        return _purchases(self, query)

    def purchases_in_state(
        self: _FirestoreBase, state: PurchaseState, limit: int
    ) -> list[Purchase]:
        query = (
            self.db.collection(PURCHASES)
            .where(filter=_equal("state", str(state)))
            .order_by("created_at", direction=DESC)
            .limit(limit)
        )
        return _purchases(self, query)

    def purchases_of_user(self: _FirestoreBase, user_id: str, limit: int) -> list[Purchase]:
        query = (
            self.db.collection(PURCHASES)
            .where(filter=_equal("user_id", user_id))
            .order_by("created_at", direction=DESC)
            .limit(limit)
        )
        return _purchases(self, query)

    def find_user_by_email(self: _FirestoreBase, email: str) -> User | None:
        query = self.db.collection(USERS).where(filter=_equal("email", email)).limit(1)
        snaps = self._fetch(query)
        return User.from_dict(snaps[0].to_dict() or {}) if snaps else None

    def record_event_failure(
        self: _FirestoreBase, event_id: str, event_type: str, error: str, now: datetime
    ) -> None:
        # Plain writes, no transaction: this runs while the store may be failing,
        # and must not add retries on top of the error being reported.
        ref = _doc(self, FAILURES, event_id)
        stamp = format_time(now)
        expire_at = now + FAILURE_RETENTION  # a datetime is stored as a Timestamp
        first = EventFailure(event_id, event_type, error, 1, stamp, stamp)
        data = {**first.to_dict(), "resolved": False, "expire_at": expire_at}
        if create_if_absent(self, ref, data):
            return
        again = {
            "type": event_type,
            "error": error,
            "attempts": firestore.Increment(1),
            "last_at": stamp,
            "resolved": False,
            "resolved_at": None,
            "expire_at": expire_at,
        }
        self._call(lambda: ref.update(again))

    def resolve_event_failure(self: _FirestoreBase, event_id: str, now: datetime) -> None:
        ref = _doc(self, FAILURES, event_id)
        # Nearly every event never failed: one read tells, and no write follows.
        known = _data(self, FAILURES, event_id)
        if known is None or known.get("resolved"):
            return
        update = {"resolved": True, "resolved_at": format_time(now)}
        try:
            self._call(lambda: ref.update(update))
        except StorageUnavailable as exc:
            if not isinstance(exc.__cause__, gexc.NotFound):
                raise

    def list_event_failures(self: _FirestoreBase, limit: int) -> list[EventFailure]:
        query = (
            self.db.collection(FAILURES)
            .where(filter=_equal("resolved", False))
            .order_by("last_at", direction=DESC)
            .limit(limit)
        )
        return [EventFailure.from_dict(snap.to_dict() or {}) for snap in self._fetch(query)]

    def list_alerts(self: _FirestoreBase, limit: int = 100) -> list[SecurityAlert]:
        # Alerts stored before acknowledgement existed lack the field, so the
        # unacknowledged query misses them; the newest-first query brings them in.
        found = {a.id: a for a in _newest_alerts(self, limit, unacknowledged=False)}
        found |= {a.id: a for a in _newest_alerts(self, limit, unacknowledged=True)}
        ordered = sorted(found.values(), key=lambda a: (a.created_at, a.id), reverse=True)
        ordered.sort(key=lambda a: a.acknowledged_at is not None)  # stable: keeps newest first
        return ordered[:limit]

    def acknowledge_alert(
        self: _FirestoreBase, alert_id: str, admin_id: str, now: datetime
    ) -> SecurityAlert:
        ref = _doc(self, ALERTS, alert_id)

        def body(transaction: firestore.Transaction) -> SecurityAlert:
            data = _get(transaction, ref)
            if data is None:
                raise AlertNotFound(f"no security alert {alert_id}")
            alert = SecurityAlert.from_dict(data)
            if alert.acknowledged_at is not None:
                return alert
            change = {"acknowledged_by": admin_id, "acknowledged_at": format_time(now)}
            transaction.update(ref, change)
            return SecurityAlert.from_dict({**data, **change})

        return self._in_transaction(body)

    def add_audit(self: _FirestoreBase, record: AuditRecord) -> AuditRecord:
        ref = _doc(self, AUDIT, record.id)

        def body(transaction: firestore.Transaction) -> AuditRecord:
            known = _get(transaction, ref)
            if known is not None:
                return AuditRecord.from_dict(known)
            transaction.create(ref, record.to_dict())
            return record

        return self._in_transaction(body)

    def get_audit(self: _FirestoreBase, audit_id: str) -> AuditRecord | None:
        data = _data(self, AUDIT, audit_id)
        return None if data is None else AuditRecord.from_dict(data)

    def list_audit(
        self: _FirestoreBase, limit: int, target: str | None = None
    ) -> list[AuditRecord]:
        query = self.db.collection(AUDIT)
        if target is not None:
            query = query.where(filter=_equal("target", target))
        query = query.order_by("created_at", direction=DESC).limit(limit)
        return [AuditRecord.from_dict(snap.to_dict() or {}) for snap in self._fetch(query)]
