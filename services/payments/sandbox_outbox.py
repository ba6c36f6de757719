"""The sandbox's webhook outbox: events queued with the change that caused them,
signed with the webhook secret and POSTed to the app's own webhook by a delivery
thread, retried with backoff until the app answers 2xx.

Delivery is safe across processes: an event is claimed for a while before its
POST, so two workers on one file never send it at once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from services.payments import sandbox_objects as objects
from services.payments import signature
from services.payments.sandbox_db import SandboxDb

log = logging.getLogger("token_store.sandbox")
MAX_ATTEMPTS = 8
BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 32, 60)
CLAIM_S = 30
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks) token-store-sandbox"
Clock = Callable[[], float]  # seconds since the epoch, like time.time


@dataclass(frozen=True)
class Pending:
    """An event to enqueue: its type, object, what an update changed, and how much later."""

    type: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None = None
    delay_s: float = 0.0


class Outbox:
    def __init__(
        self, db: SandboxDb, webhook_url: str, secret: str, enabled: bool, clock: Clock
    ) -> None:
        self.db = db
        self.webhook_url = webhook_url
        self.secret = secret
        self.enabled = enabled  # off: events are recorded, never delivered
        self.background = True
        self._clock = clock
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    def enqueue(self, conn: sqlite3.Connection, pending: Pending) -> None:
        """Within the caller's transaction, so the event commits with its cause."""
        now = self._clock()
        event = objects.event(pending.type, pending.obj, int(now), pending.previous)
        # rowid keeps one change's events in order; a delay sends follow-ups after them.
        conn.execute(
            "INSERT INTO outbox (event_id, payload, due) VALUES (?, ?, ?)",
            (event["id"], json.dumps(event), now + pending.delay_s),
        )

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event generated (delivered or not) since ``created_gte``, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT payload FROM outbox WHERE json_extract(payload, '$.created') >= ?"
                " ORDER BY json_extract(payload, '$.created') DESC, rowid DESC",
                (created_gte,),
            ).fetchall()
        events = [json.loads(row[0]) for row in rows]
        return iter([e for e in events if not types or e["type"] in types])

    def pending(self) -> int:
        with self.db.connect() as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()
        return int(row[0])

    # -- delivery ----------------------------------------------------------------

    def kick(self) -> None:
        """Wake the delivery thread, starting it if needed."""
        if not self.enabled or not self.background:
            return
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._deliver_forever, name="sandbox-webhooks", daemon=True
                )
                self._worker.start()
        self._wake.set()

    def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            if not self.deliver_due():
                self._wake.wait(timeout=1.0)

    def deliver_pending(self) -> None:
        """Deliver every event that is due now, in this thread (one attempt each)."""
        while self.deliver_due():
            pass

    def deliver_due(self) -> bool:
        """Deliver one due event; False when none is due. Safe across processes."""
        if not self.enabled:
            return False
        claimed = self._claim()
        if claimed is None:
            return False
        event_id, payload, attempts = claimed
        self._record(event_id, attempts, self._post(payload.encode()))
        return True

    def _claim(self) -> tuple[str, str, int] | None:
        now = self._clock()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT event_id, payload, attempts FROM outbox WHERE delivered IS NULL"
                " AND due <= ? AND claimed_until <= ? AND attempts < ? ORDER BY due, rowid LIMIT 1",
                (now, now, MAX_ATTEMPTS),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE outbox SET claimed_until = ? WHERE event_id = ?",
                    (now + CLAIM_S, row[0]),
                )
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    def _record(self, event_id: str, attempts: int, status: str) -> None:
        with self.db.connect() as conn:
            if status.startswith("2"):
                conn.execute(
                    "UPDATE outbox SET delivered = ?, attempts = ?, last_status = ?"
                    " WHERE event_id = ?",
                    (self._clock(), attempts + 1, status, event_id),
                )
                return
            delay = BACKOFF_S[min(attempts, len(BACKOFF_S) - 1)]
            conn.execute(
                "UPDATE outbox SET due = ?, attempts = ?, last_status = ?,"
                " claimed_until = 0 WHERE event_id = ?",
                (self._clock() + delay, attempts + 1, status, event_id),
            )
        log.warning(
            "sandbox webhook delivery of %s failed (%s); retrying in %ss", event_id, status, delay
        )

    def _post(self, payload: bytes) -> str:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature.sign(payload, self.secret),
            "User-Agent": USER_AGENT,
        }
        try:
            response = requests.post(self.webhook_url, data=payload, headers=headers, timeout=30)
        except requests.RequestException as exc:
            return f"error: {type(exc).__name__}"
        return str(response.status_code)
