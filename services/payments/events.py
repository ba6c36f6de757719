"""One way to process a verified Stripe event, for the webhook and for replays.

The event id is recorded after the handler succeeded, so an event whose
processing died half-way is processed again (every step is idempotent)
instead of being skipped as seen. An ordinary paid event is credited and
recorded in one store transaction (``Fulfilment.paid_event``). A failed
attempt is also recorded (best effort) for the operator's dashboard, and
marked resolved once the event goes through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.faults import BEFORE_EVENT_RECORD, fault_point
from services.ledger.model import utc_now
from services.operations.model import error_summary
from services.payments.fulfilment import CREDITED, Fulfilment
from services.payments.model import Purchase
from services.store.port import OperationsStore, PurchaseStore

log = logging.getLogger("token_store.events")


class EventStore(PurchaseStore, OperationsStore, Protocol):
    """The processed-event records and the failed-event records."""


@dataclass(frozen=True)
class EventResult:
    event_id: str
    outcome: str
    duplicate: bool


@dataclass(frozen=True)
class _Handled:
    outcome: str | None
    recorded: bool
    credited: Purchase | None = None  # credited in the commit that recorded the event


def _log_processed(event_id: str, event_type: str, handled: _Handled) -> None:
    """One line an event; a credit made with it is on the same line, with its ids."""
    fields = {"event_id": event_id, "event_type": event_type, "outcome": handled.outcome}
    paid = handled.credited
    if paid is None:
        log.info("stripe event %s %s: %s", event_id, event_type, handled.outcome, extra=fields)
        return
    log.info(
        f"stripe event %s %s: %s, {CREDITED}",
        event_id,
        event_type,
        handled.outcome,
        paid.id,
        paid.tokens,
        extra={**fields, "purchase_id": paid.id, "user_id": paid.user_id},
    )


class EventProcessor:
    def __init__(
        self,
        store: EventStore,
        fulfilment: Fulfilment,
        clock: Callable[[], datetime] = utc_now,
        livemode: bool = False,
    ) -> None:
        self.store = store
        self.fulfilment = fulfilment
        self.clock = clock
        self.livemode = livemode

    def process(self, event: Mapping[str, Any]) -> EventResult:
        event_id = str(event["id"])
        if self.store.event_processed(event_id):
            return EventResult(event_id, "duplicate", duplicate=True)
        try:
            handled = self._handle(event_id, event)
        except Exception as exc:
            log.error(
                "stripe event %s %s failed: %s",
                event_id,
                event["type"],
                error_summary(exc),
                extra={"event_id": event_id, "event_type": event["type"], "outcome": "error"},
            )
            self._record_failure(event_id, str(event["type"]), exc)
            raise
        if handled.outcome is None:  # another delivery recorded it meanwhile
            return EventResult(event_id, "duplicate", duplicate=True)
        if not handled.recorded:  # a recorded paid event resolved its failure in the same commit
            self._resolve_failure(event_id)
        _log_processed(event_id, str(event["type"]), handled)
        return EventResult(event_id, handled.outcome, duplicate=False)

    def _handle(self, event_id: str, event: Mapping[str, Any]) -> _Handled:
        """The outcome (None: a duplicate after all), whether it is recorded already, and
        the purchase it credited in that same commit."""
        outcome = self._other_mode(event)
        if outcome is None:
            paid = self.fulfilment.paid_event(event)
            if paid.duplicate:
                return _Handled(None, True)
            if paid.recorded:
                credited = paid.purchase if paid.txn is not None else None
                return _Handled(paid.outcome, True, credited)
            outcome = paid.outcome if paid.handled else self.fulfilment.handle_event(event)
        fault_point(BEFORE_EVENT_RECORD)
        self.store.record_event(event_id, str(event["type"]), outcome, self.clock())
        return _Handled(outcome, False)

    def _other_mode(self, event: Mapping[str, Any]) -> str | None:
        """A test-mode event on a live deployment (or the reverse) is never applied."""
        if event.get("livemode") is self.livemode:
            return None
        self.fulfilment.security.alert(
            "livemode_mismatch",
            "critical",
            reason=f"event {event['id']} has livemode={event.get('livemode')}; "
            f"this deployment takes livemode={self.livemode}: not applied",
        )
        return "livemode_mismatch"

    def _record_failure(self, event_id: str, event_type: str, exc: Exception) -> None:
        """Best effort: the store may be what failed, and the original error must surface.

        Another delivery of the event may have processed it since this one checked;
        then the failure is resolved at once, or it would stay open for ever (Stripe's
        next retry is answered as a duplicate). Both sides write, then read.
        """
        try:
            self.store.record_event_failure(event_id, event_type, error_summary(exc), self.clock())
            if self.store.event_processed(event_id):
                self.store.resolve_event_failure(event_id, self.clock())
        except Exception:
            log.warning(
                "could not record the failure of event %s",
                event_id,
                extra={"event_id": event_id},
            )

    def _resolve_failure(self, event_id: str) -> None:
        try:
            self.store.resolve_event_failure(event_id, self.clock())
        except Exception:
            log.warning(
                "could not mark event %s's earlier failure resolved",
                event_id,
                extra={"event_id": event_id},
            )
