"""Security alerts and the purchase limits' settings.

An alert is a stored record an operator reviews, and one WARNING log line
they can search for.
"""

from __future__ import annotations

import hashlib
import logging
import reprlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from services.ledger.model import format_time, utc_now
from services.payments.model import PurchaseLimits, SecurityAlert
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.security")
BAD_SIGNATURE_BURST = 10  # bad signatures within the window that make one alert
BURST_WINDOW_S = 60.0
# Repeats of one alert kind for one user within this window are one alert with a count.
ALERT_WINDOW_S = 3600
MAX_DETAILS = 12
MAX_KEY_CHARS = 40
MAX_DETAIL_CHARS = 300
MAX_ECHO_CHARS = 60  # what an error message quotes of a client's value


def new_alert_id() -> str:
    return "alert_" + uuid.uuid4().hex


def alert_id(alert_type: str, user_id: str | None, now: datetime) -> str:
    """The same for every repeat of one kind, for one user, within one window."""
    window = int(now.timestamp()) // ALERT_WINDOW_S
    digest = hashlib.sha256(f"{alert_type}\n{user_id or ''}\n{window}".encode()).hexdigest()
    return "alert_" + digest[:32]


def bounded_repr(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters: what a message may quote of an input."""
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    text = shortener.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _bounded_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_CHARS else value[:MAX_DETAIL_CHARS] + "..."
    return bounded_repr(value, MAX_DETAIL_CHARS)


def bound_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """At most MAX_DETAILS fields, each value cut short: an alert never stores an input whole."""
    kept = list(details.items())[:MAX_DETAILS]
    return {str(key)[:MAX_KEY_CHARS]: _bounded_value(value) for key, value in kept}


class SecurityService:
    def __init__(
        self,
        store: PurchaseStore,
        limits: PurchaseLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.limits = limits or PurchaseLimits()
        self.clock = clock
        self._bad_signatures: deque[float] = deque()
        self._lock = threading.Lock()

    def alert(
        self,
        alert_type: str,
        severity: str,
        *,
        user_id: str | None = None,
        purchase_id: str | None = None,
        **details: Any,
    ) -> SecurityAlert:
        """Store an alert. One about a purchase stands alone; others are counted on one
        alert per kind, user and window, so a flood of requests makes one alert."""
        now = self.clock()
        bounded = bound_details(details)
        alert = SecurityAlert(
            id=alert_id(alert_type, user_id, now) if purchase_id is None else new_alert_id(),
            type=alert_type,
            severity=severity,
            user_id=user_id,
            purchase_id=purchase_id,
            details=bounded,
            created_at=format_time(now),
        )
        log.warning(
            "security alert %s: %s",
            alert_type,
            bounded.get("reason", ""),
            extra={"alert_type": alert_type, "user_id": user_id, "purchase_id": purchase_id},
        )
        if purchase_id is None:
            self.store.count_alert(alert)
        else:
            self.store.add_alert(alert)
        return alert

    def bad_signature(self, reason: str) -> None:
        """Count a rejected webhook; a burst of them becomes one alert."""
        now = time.monotonic()
        with self._lock:
            self._bad_signatures.append(now)
            while self._bad_signatures and now - self._bad_signatures[0] > BURST_WINDOW_S:
                self._bad_signatures.popleft()
            burst = len(self._bad_signatures) >= BAD_SIGNATURE_BURST
            if burst:
                self._bad_signatures.clear()
        log.warning("webhook signature rejected: %s", reason, extra={"alert_type": "bad_signature"})
        if burst:
            self.alert(
                "bad_signature_burst",
                "critical",
                reason=f"{BAD_SIGNATURE_BURST} bad webhook signatures within {BURST_WINDOW_S:.0f}s",
            )
