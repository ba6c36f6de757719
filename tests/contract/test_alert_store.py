"""Repeated alerts on every store: one record per id with a count, counted atomically
across processes, and the open alerts of one severity for the dashboard."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from services.ledger.model import format_time
from services.payments.model import SecurityAlert
from services.store.port import Store
from tests.contract.conftest import StoreFactory

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def repeat(at: datetime, alert_id: str = "alert_agg_1", **details: object) -> SecurityAlert:
    return SecurityAlert(
        id=alert_id,
        type="unknown_package",
        severity="info",
        user_id="ann",
        details={"reason": "no pack 'x'", **details},
        created_at=format_time(at),
    )


def test_the_first_occurrence_is_stored_with_a_count_of_one(store: Store) -> None:
    store.count_alert(repeat(NOW))
    [stored] = store.list_alerts()
    assert (stored.id, stored.count, stored.created_at) == ("alert_agg_1", 1, format_time(NOW))
    assert stored.details == {"reason": "no pack 'x'"}


def test_repeats_add_to_the_count_and_keep_the_first_details(store: Store) -> None:
    for n in range(3):
        store.count_alert(repeat(NOW + timedelta(seconds=n), reason=f"try {n}"))
    [stored] = store.list_alerts()
    assert stored.count == 3
    assert stored.created_at == format_time(NOW)
    assert stored.last_at == format_time(NOW + timedelta(seconds=2))
    assert stored.details == {"reason": "try 0"}


def test_an_acknowledged_alert_keeps_counting_and_stays_acknowledged(store: Store) -> None:
    store.count_alert(repeat(NOW))
    store.acknowledge_alert("alert_agg_1", "admin-1", NOW + timedelta(minutes=1))
    store.count_alert(repeat(NOW + timedelta(minutes=2)))
    [stored] = store.list_alerts()
    assert (stored.count, stored.acknowledged_by) == (2, "admin-1")


def test_concurrent_repeats_from_several_processes_lose_no_count(
    store_factory: StoreFactory,
) -> None:
    stores = [store_factory() for _ in range(3)]
    calls = 60

    def one(n: int) -> None:
        stores[n % len(stores)].count_alert(repeat(NOW + timedelta(milliseconds=n)))

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(one, range(calls)))
    [stored] = stores[0].list_alerts()
    assert stored.count == calls
    assert stored.last_at is not None and stored.last_at >= stored.created_at


def test_open_alerts_of_one_severity_newest_first(store: Store) -> None:
    for n in range(4):
        severity = "critical" if n % 2 == 0 else "info"
        store.add_alert(
            SecurityAlert(
                id=f"alert_{n}",
                type="amount_mismatch",
                severity=severity,
                created_at=format_time(NOW + timedelta(seconds=n)),
            )
        )
    store.acknowledge_alert("alert_2", "admin-1", NOW + timedelta(hours=1))
    store.add_alert(
        SecurityAlert(
            id="alert_9",
            type="bad_signature_burst",
            severity="critical",
            created_at=format_time(NOW + timedelta(seconds=9)),
        )
    )
    assert [a.id for a in store.list_open_alerts("critical", 10)] == ["alert_9", "alert_0"]
    assert [a.id for a in store.list_open_alerts("critical", 1)] == ["alert_9"]
    assert [a.id for a in store.list_open_alerts("info", 10)] == ["alert_3", "alert_1"]
