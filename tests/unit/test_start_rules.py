"""start_rules.start on an in-memory unit of work: what it reads, decides and writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.errors import PurchaseLimitReached
from services.ledger.model import format_time
from services.payments.model import Purchase, PurchaseLimits, PurchaseState
from services.payments.start_rules import StartRecord, start
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = PurchaseLimits()


def purchase(n: int, at: datetime = NOW, state: PurchaseState = PurchaseState.PENDING) -> Purchase:
    return purchase_record(f"pur_{n}", "buyer", at, state)


class Work:
    """The buyer's purchases and record in memory; counts the reads start makes."""

    def __init__(self, purchases: list[Purchase], record: StartRecord | None) -> None:
        self.stored_purchases = {p.id: p for p in purchases}
        self.stored_record = record
        self.candidate_id = ""
        self.queried = 0
        self.read_by_id: list[list[str]] = []

    def stored(self) -> Purchase | None:
        return self.stored_purchases.get(self.candidate_id)

    def record(self) -> StartRecord | None:
        return self.stored_record

    def recent(self, since: datetime) -> list[Purchase]:
        self.queried += 1
        cutoff = format_time(since)
        return [p for p in self.stored_purchases.values() if p.created_at >= cutoff]

    def purchases(self, ids: list[str]) -> list[Purchase]:
        self.read_by_id.append(ids)
        return [self.stored_purchases[i] for i in ids if i in self.stored_purchases]

    def insert(self, purchase: Purchase, record: StartRecord | None) -> None:
        self.stored_purchases[purchase.id] = purchase
        if record is not None:
            self.stored_record = record

    def start(self, p: Purchase, limits: PurchaseLimits | None = LIMITS) -> Purchase:
        self.candidate_id = p.id
        return start(self, p, limits, NOW)


def test_a_start_with_free_slots_reads_no_purchase() -> None:
    work = Work([], StartRecord())
    for n in range(4):
        work.start(purchase(n))
    assert (work.queried, work.read_by_id) == (0, [])
    assert [s.purchase_id for s in (work.stored_record or StartRecord()).starts] == [
        f"pur_{n}" for n in range(4)
    ]


def test_a_full_window_is_counted_on_the_purchases_read_by_id() -> None:
    work = Work([], StartRecord())
    for n in range(5):
        work.start(purchase(n))
    work.stored_purchases["pur_1"] = purchase(1, state=PurchaseState.EXPIRED)
    work.start(purchase(5))
    assert sorted(work.read_by_id[0]) == [f"pur_{n}" for n in range(5)]
    with pytest.raises(PurchaseLimitReached):
        work.start(purchase(6))
    assert "pur_6" not in work.stored_purchases


def test_a_missing_record_is_built_once_from_the_buyers_purchases() -> None:
    older = [purchase(n, NOW - timedelta(minutes=10), PurchaseState.PAID) for n in range(5)]
    work = Work(older, None)
    with pytest.raises(PurchaseLimitReached):
        work.start(purchase(9))
    assert work.queried == 1
    assert work.stored_record is None  # refused: nothing written
    work.start(purchase(9, NOW - timedelta(days=2)), None)
    assert work.stored_record is None  # paid purchases alone never create the record


def test_a_paid_purchase_is_never_refused_and_counts_once_the_record_exists() -> None:
    work = Work([], StartRecord())
    for n in range(5):
        work.start(purchase(n, state=PurchaseState.PAID), None)
    assert work.read_by_id == []
    with pytest.raises(PurchaseLimitReached):
        work.start(purchase(5))


def test_the_same_id_returns_the_stored_purchase_without_reading_the_record() -> None:
    work = Work([], StartRecord())
    first = work.start(purchase(1))
    assert work.start(purchase(1, NOW + timedelta(minutes=1))) == first


def test_the_record_keeps_only_the_last_day() -> None:
    record = StartRecord()
    record = record.with_start(purchase(1, NOW - timedelta(days=1, seconds=1)), NOW)
    record = record.with_start(purchase(2), NOW)
    assert [s.purchase_id for s in record.starts] == ["pur_2"]
    assert StartRecord.from_dict(record.to_dict()) == record
