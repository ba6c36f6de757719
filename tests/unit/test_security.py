"""Security alerts: stored for operators, bursts of bad signatures folded into one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.security import (
    BAD_SIGNATURE_BURST,
    MAX_DETAIL_CHARS,
    MAX_DETAILS,
    MAX_ECHO_CHARS,
    SecurityService,
    bound_details,
    bounded_repr,
)
from services.store.sqlite import SqliteStore


def test_a_burst_of_bad_signatures_makes_one_critical_alert(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    security = SecurityService(store)
    for _ in range(BAD_SIGNATURE_BURST - 1):
        security.bad_signature("no matching signature")
    assert store.list_alerts() == []
    security.bad_signature("no matching signature")
    [alert] = store.list_alerts()
    assert (alert.type, alert.severity) == ("bad_signature_burst", "critical")
    for _ in range(BAD_SIGNATURE_BURST - 1):
        security.bad_signature("again")
    assert len(store.list_alerts()) == 1
    store.close()


def test_an_alert_keeps_who_what_and_why(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    SecurityService(store).alert("limit_reached", "info", user_id="u1", reason="5 per hour")
    [alert] = store.list_alerts()
    assert (alert.user_id, alert.details["reason"]) == ("u1", "5 per hour")
    assert alert.created_at.endswith("Z")
    store.close()


def test_repeats_within_the_hour_are_one_alert_and_the_next_hour_opens_another(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    moments = iter(
        datetime(2026, 3, 1, hour, minute, tzinfo=UTC)
        for hour, minute in ((10, 0), (10, 30), (10, 59), (11, 0))
    )
    security = SecurityService(store, clock=lambda: next(moments))
    for _ in range(4):
        security.alert("unknown_package", "info", user_id="u1", reason="no pack")
    alerts = sorted(store.list_alerts(), key=lambda a: a.created_at)
    assert [(a.created_at, a.count) for a in alerts] == [
        ("2026-03-01T10:00:00.000000Z", 3),
        ("2026-03-01T11:00:00.000000Z", 1),
    ]
    assert alerts[0].last_at == "2026-03-01T10:59:00.000000Z"
    store.close()


def test_alerts_about_a_purchase_are_never_folded_together(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    security = SecurityService(store)
    for purchase_id in ("pur_1", "pur_2", "pur_2"):
        security.alert("amount_mismatch", "critical", user_id="u1", purchase_id=purchase_id)
    assert sorted(a.purchase_id or "" for a in store.list_alerts()) == ["pur_1", "pur_2", "pur_2"]
    store.close()


def test_what_an_alert_stores_is_bounded() -> None:
    details = bound_details({f"k{n}": "v" * 10_000 for n in range(50)} | {"n": 5})
    assert len(details) == MAX_DETAILS
    assert all(len(str(value)) <= MAX_DETAIL_CHARS + 3 for value in details.values())
    assert bound_details({"ids": list(range(100_000))})["ids"].endswith("...]")
    assert len(bounded_repr("x" * 500_000)) <= MAX_ECHO_CHARS + 3
    assert bounded_repr("popular") == "'popular'"
