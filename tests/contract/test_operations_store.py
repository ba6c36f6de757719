"""The operator's side of the storage contract, on every store: the dashboard's queries,
failed webhook events, alert acknowledgement and the audit trail."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.errors import AlertNotFound
from services.ledger.model import format_time
from services.operations.model import AuditRecord
from services.payments.model import Purchase, PurchaseState, SecurityAlert, User
from services.store.port import Store
from tests.contract.conftest import StoreFactory
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


def purchase(
    n: int, at: datetime, state: PurchaseState, buyer: str = "buyer", user: str | None = None
) -> Purchase:
    return purchase_record(
        f"pur_{n:03d}", buyer, at, state, user_id=user or buyer, session_id=f"cs_{n:03d}"
    )


def alert(n: int, at: datetime) -> SecurityAlert:
    return SecurityAlert(
        id=f"alert_{n}", type="amount_mismatch", severity="critical", created_at=format_time(at)
    )


def audit(n: int, at: datetime, target: str = "user:ann") -> AuditRecord:
    return AuditRecord(
        id=f"audit_{n}",
        admin_id="admin-1",
        action="grant_tokens",
        target=target,
        reason=f"reason {n}",
        created_at=format_time(at),
        details={"amount": n},
    )


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    made = store_factory()
    made.ensure_user(User(id="buyer", email="Buyer@Example.com", username="Buyer"), NOW)
    return made


def test_purchases_created_in_a_range_in_one_state_oldest_first(store: Store) -> None:
    start, end = NOW - timedelta(days=1), NOW
    cases = [
        (1, start - timedelta(microseconds=1), PurchaseState.PAID),  # before the range
        (2, start, PurchaseState.PAID),  # the start is included
        (3, NOW - timedelta(hours=1), PurchaseState.PAID),
        (4, NOW - timedelta(hours=2), PurchaseState.FAILED),  # another state
        (5, end, PurchaseState.PAID),  # the end is excluded
    ]
    for n, at, state in reversed(cases):
        store.start_purchase(purchase(n, at, state), None, NOW)
    found = store.purchases_created(start, end, PurchaseState.PAID)
    assert [p.id for p in found] == ["pur_002", "pur_003"]
    assert store.purchases_created(start, end, PurchaseState.FAILED)[0].id == "pur_004"


def test_purchases_in_a_state_follow_state_changes_newest_first(store: Store) -> None:
    for n in range(4):
        at = NOW + timedelta(minutes=n)
        store.start_purchase(purchase(n, at, PurchaseState.PENDING), None, NOW)
    for n in (0, 2, 3):
        store.update_purchase(
            f"pur_{n:03d}", lambda p: p.with_changes("t", state=PurchaseState.NEEDS_REVIEW)
        )
    review = store.purchases_in_state(PurchaseState.NEEDS_REVIEW, 2)
    assert [p.id for p in review] == ["pur_003", "pur_002"]
    assert [p.id for p in store.purchases_in_state(PurchaseState.PENDING, 10)] == ["pur_001"]
    store.update_purchase("pur_003", lambda p: p.with_changes("t", state=PurchaseState.PAID))
    review = store.purchases_in_state(PurchaseState.NEEDS_REVIEW, 10)
    assert [p.id for p in review] == ["pur_002", "pur_000"]


def test_purchases_of_a_user_are_those_credited_to_them(store: Store) -> None:
    store.ensure_user(User(id="friend"), NOW)
    store.start_purchase(purchase(1, NOW, PurchaseState.PAID), None, NOW)
    gift = purchase(2, NOW + timedelta(seconds=1), PurchaseState.PAID, user="friend")
    store.start_purchase(gift, None, NOW)
    store.start_purchase(purchase(3, NOW + timedelta(seconds=2), PurchaseState.PAID), None, NOW)
    assert [p.id for p in store.purchases_of_user("buyer", 10)] == ["pur_003", "pur_001"]
    assert [p.id for p in store.purchases_of_user("friend", 10)] == ["pur_002"]
    assert [p.id for p in store.purchases_of_user("buyer", 1)] == ["pur_003"]


def test_users_are_found_by_email(store: Store) -> None:
    found = store.find_user_by_email("Buyer@Example.com")
    assert found is not None and found.id == "buyer"
    assert store.find_user_by_email("nobody@example.com") is None


def test_a_failed_event_counts_attempts_until_it_is_resolved(store: Store) -> None:
    later = NOW + timedelta(minutes=5)
    store.record_event_failure("evt_a", "checkout.session.completed", "storage_unavailable", NOW)
    store.record_event_failure("evt_b", "charge.refunded", "RuntimeError", NOW)
    store.record_event_failure("evt_a", "checkout.session.completed", "contention", later)
    failures = store.list_event_failures(10)
    assert [f.event_id for f in failures] == ["evt_a", "evt_b"]  # the latest failure first
    first = failures[0]
    assert (first.attempts, first.error) == (2, "contention")
    assert first.type == "checkout.session.completed"
    assert (first.first_at, first.last_at) == (format_time(NOW), format_time(later))
    assert first.resolved_at is None
    store.resolve_event_failure("evt_a", later)
    store.resolve_event_failure("evt_never_failed", later)  # nothing to resolve: no error
    assert [f.event_id for f in store.list_event_failures(10)] == ["evt_b"]
    store.record_event_failure("evt_a", "checkout.session.completed", "again", later)
    again = store.list_event_failures(1)[0]
    assert (again.event_id, again.attempts, again.resolved_at) == ("evt_a", 3, None)


def test_acknowledged_alerts_keep_the_first_reviewer_and_sort_last(store: Store) -> None:
    for n in range(3):
        store.add_alert(alert(n, NOW + timedelta(seconds=n)))
    acknowledged = store.acknowledge_alert("alert_2", "admin-1", NOW + timedelta(hours=1))
    assert (acknowledged.acknowledged_by, acknowledged.acknowledged_at) == (
        "admin-1",
        format_time(NOW + timedelta(hours=1)),
    )
    again = store.acknowledge_alert("alert_2", "admin-2", NOW + timedelta(hours=2))
    assert again.acknowledged_by == "admin-1"
    listed = store.list_alerts()
    assert [a.id for a in listed] == ["alert_1", "alert_0", "alert_2"]
    assert listed[2].acknowledged_by == "admin-1" and listed[0].acknowledged_at is None
    assert [a.id for a in store.list_alerts(limit=1)] == ["alert_1"]
    with pytest.raises(AlertNotFound):
        store.acknowledge_alert("alert_missing", "admin-1", NOW)


def test_the_audit_trail_keeps_the_first_record_of_an_id(store: Store) -> None:
    for n in range(3):
        stored = store.add_audit(audit(n, NOW + timedelta(seconds=n)))
        assert stored == audit(n, NOW + timedelta(seconds=n))
    store.add_audit(audit(9, NOW + timedelta(seconds=9), target="purchase:p1"))
    repeat = replace(audit(1, NOW + timedelta(hours=1)), reason="changed")
    assert store.add_audit(repeat) == audit(1, NOW + timedelta(seconds=1))
    assert store.get_audit("audit_1") == audit(1, NOW + timedelta(seconds=1))
    assert store.get_audit("audit_missing") is None
    assert [r.id for r in store.list_audit(10)] == ["audit_9", "audit_2", "audit_1", "audit_0"]
    assert [r.id for r in store.list_audit(2, target="user:ann")] == ["audit_2", "audit_1"]
    assert store.list_audit(10, target="purchase:p1")[0].details == {"amount": 9}


def test_other_store_objects_see_the_same_records(store_factory: StoreFactory) -> None:
    first, second = store_factory(), store_factory()
    first.add_audit(audit(1, NOW))
    first.record_event_failure("evt_x", "payment_intent.succeeded", "err", NOW)
    assert second.get_audit("audit_1") == audit(1, NOW)
    assert [f.event_id for f in second.list_event_failures(5)] == ["evt_x"]
