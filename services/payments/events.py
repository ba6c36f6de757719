"""One way to process a verified Stripe event, for the webhook and for replays.

The event id is recorded after the handler succeeded, so an event whose
processing died half-way is processed again (every step is idempotent)
instead of being skipped as seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.ledger.model import utc_now
from services.payments.fulfilment import Fulfilment
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.events")


@dataclass(frozen=True)
class EventResult:
    event_id: str
    outcome: str
    duplicate: bool


class EventProcessor:
    def __init__(
        self,
        store: PurchaseStore,
        fulfilment: Fulfilment,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.fulfilment = fulfilment
        self.clock = clock

    def process(self, event: Mapping[str, Any]) -> EventResult:
        event_id = str(event["id"])
        if self.store.event_processed(event_id):
            return EventResult(event_id, "duplicate", duplicate=True)
        outcome = self.fulfilment.handle_event(event)
        self.store.record_event(event_id, str(event["type"]), outcome, self.clock())
        log.info(
            "stripe event %s %s: %s",
            event_id,
            event["type"],
            outcome,
            extra={"event_id": event_id},
        )
        return EventResult(event_id, outcome, duplicate=False)
