"""Security alerts: stored for operators, bursts of bad signatures folded into one."""

from __future__ import annotations

from pathlib import Path

from services.security import BAD_SIGNATURE_BURST, SecurityService
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
