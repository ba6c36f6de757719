"""Security alerts and the purchase limits' settings.

An alert is a stored record an operator reviews, and one WARNING log line
they can search for.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.ledger.model import format_time, utc_now
from services.payments.model import PurchaseLimits, SecurityAlert
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.security")
BAD_SIGNATURE_BURST = 10  # bad signatures within the window that make one alert
BURST_WINDOW_S = 60.0


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
        alert = SecurityAlert(
            id="alert_" + uuid.uuid4().hex,
            type=alert_type,
            severity=severity,
            user_id=user_id,
            purchase_id=purchase_id,
            details=details,
            created_at=format_time(self.clock()),
        )
        log.warning(
            "security alert %s: %s",
            alert_type,
            details.get("reason", ""),
            extra={"alert_type": alert_type, "user_id": user_id, "purchase_id": purchase_id},
        )
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
