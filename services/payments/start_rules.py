"""Starting a purchase: the decision as a pure function over a small unit of work.

Both stores run ``start(uow, purchase, limits, now)`` inside one write
transaction; the unit of work only reads and writes, so the two cannot drift.

The limits need the buyer's purchases of the last day. Rather than a query
inside the transaction (a range read that, on Firestore, makes concurrent
checkouts of other buyers wait), each buyer has one small record of their
recent starts (purchase id and start time), read and rewritten together with
the purchase create. Two starts of one buyer thus conflict on that record and
run one after the other; starts of different buyers touch disjoint documents.

Whether a start still counts depends on its purchase's state, which changes
elsewhere (paid, failed, expired). The record holds no state: every start
inside a window is first assumed to count. Only when that upper bound reaches
a limit are the purchases themselves read by id, in the same transaction, and
counted exactly with ``check_limits``, so the answer (and its Retry-After) is
the one a query over the buyer's purchases would give.

Deployments from before the record have purchases and no record: a missing
record is built once from those purchases (``uow.recent``, a query the stores
run outside their transaction's reads), then kept up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.ledger.model import format_time
from services.payments.limits import DAY, HOUR, check_limits
from services.payments.model import Purchase, PurchaseLimits

# Starts older than a day never count again. Past this many starts within one day
# the oldest are forgotten: 20 may count, so the rest are failed or abandoned ones.
MAX_STARTS = 100


@dataclass(frozen=True)
class Start:
    purchase_id: str
    created_at: str  # the purchase's own created_at, as the limits read it


@dataclass(frozen=True)
class StartRecord:
    """A buyer's starts of the last day, oldest first."""

    starts: tuple[Start, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"starts": [{"id": s.purchase_id, "at": s.created_at} for s in self.starts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StartRecord:
        return cls(tuple(Start(str(s["id"]), str(s["at"])) for s in data.get("starts", ())))

    @classmethod
    def of(cls, purchases: Iterable[Purchase]) -> StartRecord:
        return cls(tuple(Start(p.id, p.created_at) for p in purchases))

    def since(self, moment: datetime) -> list[Start]:
        cutoff = format_time(moment)
        return [s for s in self.starts if s.created_at >= cutoff]

    def with_start(self, purchase: Purchase, now: datetime) -> StartRecord:
        kept = {s.purchase_id: s for s in self.since(now - DAY)}
        kept[purchase.id] = Start(purchase.id, purchase.created_at)
        ordered = sorted(kept.values(), key=lambda s: (s.created_at, s.purchase_id))
        return StartRecord(tuple(ordered[-MAX_STARTS:]))


class StartUnitOfWork(Protocol):
    """What ``start`` reads and writes, all inside one store transaction."""

    def stored(self) -> Purchase | None:
        """The purchase with the new purchase's id, if any."""

    def record(self) -> StartRecord | None:
        """The buyer's record; None when the buyer has none yet."""

    def recent(self, since: datetime) -> list[Purchase]:
        """The buyer's purchases created at or after ``since`` (builds a missing record)."""

    def purchases(self, ids: list[str]) -> list[Purchase]:
        """The buyer's purchases with these ids (missing ones left out)."""

    def insert(self, purchase: Purchase, record: StartRecord | None) -> None:
        """Create the purchase and, unless None, store the buyer's record."""


def start(
    uow: StartUnitOfWork, purchase: Purchase, limits: PurchaseLimits | None, now: datetime
) -> Purchase:
    """Insert ``purchase`` if the buyer's limits allow it; the same id returns the stored one.

    ``limits=None`` records a purchase already paid: never refused, and counted
    toward later starts. Raises PurchaseLimitReached when no slot is free.
    """
    stored = uow.stored()
    if stored is not None:
        return stored
    record = uow.record()
    if record is None and limits is None:
        # A later limited start builds the record from the purchases, this one included.
        # So a buyer who only ever pays (e.g. unidentified Payment Links) gets no record.
        uow.insert(purchase, None)
        return purchase
    if record is None:
        record = StartRecord.of(uow.recent(now - DAY))
    if limits is not None and _may_be_full(record, limits, now):
        check_limits(uow.purchases([s.purchase_id for s in record.since(now - DAY)]), limits, now)
    uow.insert(purchase, record.with_start(purchase, now))
    return purchase


def _may_be_full(record: StartRecord, limits: PurchaseLimits, now: datetime) -> bool:
    """True unless the starts of each window, all counted, leave a slot free."""
    return len(record.since(now - HOUR)) >= limits.per_hour or (
        len(record.since(now - DAY)) >= limits.per_day
    )
