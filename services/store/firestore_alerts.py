"""Firestore: repeated security alerts counted on one document, and open alerts by severity."""

from __future__ import annotations

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.payments.model import SecurityAlert
from services.store.firestore_deadline import CALL_TIMEOUT_S
from services.store.firestore_purchases import ALERTS, _doc, _FirestoreBase, create_if_absent


class FirestoreAlerts:
    """Mixed into FirestoreStore."""

    def count_alert(self: _FirestoreBase, alert: SecurityAlert) -> None:
        ref = _doc(self, ALERTS, alert.id)
        if create_if_absent(self, ref, alert.to_dict()):
            return
        # A blind server-side increment: no read, no transaction, so repeats arriving
        # together from many instances neither contend nor lose a count.
        change = {"count": firestore.Increment(1), "last_at": alert.created_at}
        self._call(lambda: ref.update(change, timeout=CALL_TIMEOUT_S))

    def list_open_alerts(self: _FirestoreBase, severity: str, limit: int) -> list[SecurityAlert]:
        query = (
            self.db.collection(ALERTS)
            .where(filter=FieldFilter("severity", "==", severity))
            .where(filter=FieldFilter("acknowledged_at", "==", None))
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [SecurityAlert.from_dict(snap.to_dict() or {}) for snap in self._fetch(query)]
