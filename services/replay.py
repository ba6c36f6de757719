"""Replay the payment provider's recent events through the webhook's own path.

For events the webhook missed (an outage, a misconfigured endpoint, deliveries
Stripe gave up on): list them from the provider and hand each to
``EventProcessor.process``, which skips ids already recorded and is idempotent,
so a replay is safe to run at any time and any number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.payments.events import EventProcessor
from services.payments.port import PaymentsGateway

log = logging.getLogger("token_store.replay")
# Stripe keeps events for 30 days; asking for more would silently return less.
MAX_SINCE = timedelta(days=30)


class ReplayError(ValueError):
    """The replay was asked for something it cannot do (e.g. a window over 30 days)."""


@dataclass(frozen=True)
class ReplayedEvent:
    event_id: str
    event_type: str
    created: int
    outcome: str  # the processor's outcome, "duplicate", or "failed"
    duplicate: bool = False
    error: str | None = None


@dataclass
class ReplayReport:
    since: datetime
    events: list[ReplayedEvent] = field(default_factory=list)

    @property
    def listed(self) -> int:
        return len(self.events)

    @property
    def processed(self) -> int:
        return sum(1 for e in self.events if not e.duplicate and e.error is None)

    @property
    def already_recorded(self) -> int:
        return sum(1 for e in self.events if e.duplicate)

    @property
    def failed(self) -> int:
        return sum(1 for e in self.events if e.error is not None)


def replay_events(
    gateway: PaymentsGateway, processor: EventProcessor, since: timedelta, now: datetime
) -> ReplayReport:
    """Process every event created in the last ``since``, oldest first; report each outcome.

    An event that fails is reported (and logged) and the replay goes on: the
    webhook also receives events in any order, and running again retries it.
    """
    if since <= timedelta(0):
        raise ReplayError(f"the replay window must be positive, got {_span(since)}")
    if since > MAX_SINCE:
        raise ReplayError(f"Stripe keeps events for 30 days; cannot replay the last {_span(since)}")
    if now.tzinfo is None:
        raise ReplayError("now must be timezone-aware")
    start = now - since
    report = ReplayReport(since=start)
    listed = gateway.list_events(created_gte=int(start.timestamp()))
    for event in oldest_first(listed):
        report.events.append(_replay_one(processor, event))
    return report


def oldest_first(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events sorted by creation time; ties keep the provider's order, reversed.

    Stripe lists newest first, so within one second the reversed listing is the
    order in which the events were created.
    """
    listed = list(events)
    listed.reverse()
    return sorted(listed, key=lambda event: int(event["created"]))


def _span(window: timedelta) -> str:
    """``31 days``, ``72 hours``, ``90 minutes``: the window as it was most likely given."""
    seconds = int(window.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _replay_one(processor: EventProcessor, event: dict[str, Any]) -> ReplayedEvent:
    event_id, event_type, created = str(event["id"]), str(event["type"]), int(event["created"])
    try:
        result = processor.process(event)
    except Exception as exc:
        log.exception("replay of stripe event %s (%s) failed", event_id, event_type)
        error = f"{type(exc).__name__}: {exc}"
        return ReplayedEvent(event_id, event_type, created, "failed", error=error)
    return ReplayedEvent(event_id, event_type, created, result.outcome, result.duplicate)
