"""Nobody can flood the operator's alerts: over real HTTP, what an alert stores and a reply
echoes is bounded, repeats are counted on one alert, critical alerts stay on the dashboard
above any amount of noise, and many alerts are acknowledged in one audited form."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from services.ledger.model import format_time, utc_now
from services.payments.model import SecurityAlert
from services.store.port import Store
from tests.support.purchases import Buyer, send
from tests.support.server import AppServer
from tests.support.stores import opened

OPS_EMAIL = "ops@example.com"
HUGE = "x" * 500_000
MAX_ALERT_BYTES = 2_000


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({"OPERATOR_EMAILS": OPS_EMAIL}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(app: AppServer) -> Iterator[Store]:
    with opened(app) as store:
        yield store


def alerts_of(store: Store, user_id: str | None, kind: str) -> list[SecurityAlert]:
    return [a for a in store.list_alerts(1000) if a.user_id == user_id and a.type == kind]


def checkout(buyer: Buyer, package: str) -> requests.Response:
    return buyer.post(
        "/api/tokens/create-checkout-session",
        json={"package": package},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def test_a_huge_pack_id_is_neither_stored_nor_echoed_whole(app: AppServer, store: Store) -> None:
    buyer = Buyer(app.url, f"{uuid.uuid4().hex[:8]}@example.com")
    answers = [checkout(buyer, HUGE) for _ in range(5)]
    assert {a.status_code for a in answers} == {400}
    assert {a.json()["code"] for a in answers} == {"unknown_package"}
    assert max(len(a.content) for a in answers) < 1_000
    [alert] = alerts_of(store, buyer.user_id, "unknown_package")
    assert alert.count == 5
    assert len(json.dumps(alert.to_dict())) < MAX_ALERT_BYTES


def test_requests_over_the_purchase_limit_make_one_counted_alert(
    app: AppServer, store: Store
) -> None:
    buyer = Buyer(app.url, f"{uuid.uuid4().hex[:8]}@example.com")
    assert [checkout(buyer, "starter").status_code for _ in range(5)] == [200] * 5
    refused = [checkout(buyer, "starter") for _ in range(6)]
    assert {(r.status_code, r.json()["code"]) for r in refused} == {(429, "purchase_limit_reached")}
    [alert] = alerts_of(store, buyer.user_id, "limit_reached")
    assert alert.count == 6


def test_bad_signatures_make_one_counted_critical_alert(app: AppServer, store: Store) -> None:
    before = sum(a.count for a in alerts_of(store, None, "bad_signature_burst"))
    for n in range(60):
        forged = send(app.url, {"id": f"evt_forged_{n}"}, signature="t=1,v1=" + "ab" * 32)
        assert forged.status_code == 400
    bursts = alerts_of(store, None, "bad_signature_burst")
    assert len(bursts) == 1
    assert bursts[0].severity == "critical"
    assert sum(a.count for a in bursts) - before == 6  # one per ten bad signatures


def test_critical_alerts_stay_on_the_dashboard_above_noise(app: AppServer, store: Store) -> None:
    start = utc_now() - timedelta(minutes=30)
    critical = SecurityAlert(
        id="alert_old_critical_" + uuid.uuid4().hex[:6],
        type="amount_mismatch",
        severity="critical",
        created_at=format_time(start),
    )
    store.add_alert(critical)
    for n in range(120):  # newer, and more than the dashboard lists
        store.add_alert(
            SecurityAlert(
                id=f"alert_noise_{uuid.uuid4().hex}",
                type="unknown_package",
                severity="info",
                user_id=f"noisy{n}",
                created_at=format_time(start + timedelta(seconds=n + 1)),
            )
        )
    ops = Buyer(app.url, OPS_EMAIL)
    page = ops.get("/admin").text
    rows = re.findall(r'data-alert="([^"]+)"', page)
    assert critical.id in rows
    noise = [n for n, alert_id in enumerate(rows) if alert_id.startswith("alert_noise_")]
    assert noise and rows.index(critical.id) < min(noise)


def bulk(ops: Buyer, ids: list[str], key: str, csrf: str | None = None) -> requests.Response:
    data = [("csrf_token", csrf if csrf is not None else ops.csrf), ("idempotency_key", key)]
    data += [("alert_id", alert_id) for alert_id in ids]
    return ops.http.post(
        f"{ops.base_url}/admin/alerts/acknowledge", data=data, allow_redirects=False, timeout=30
    )


def test_many_alerts_are_acknowledged_in_one_audited_form(app: AppServer, store: Store) -> None:
    ids = [f"alert_bulk_{uuid.uuid4().hex}" for _ in range(4)]
    for alert_id in ids:
        store.add_alert(
            SecurityAlert(id=alert_id, type="x", severity="info", created_at=format_time(utc_now()))
        )
    ops = Buyer(app.url, OPS_EMAIL)
    forged = ops.http.post(
        f"{app.url}/admin/alerts/acknowledge",
        data={"idempotency_key": "k0", "alert_id": ids[3]},
        allow_redirects=False,
        timeout=30,
    )
    assert forged.status_code == 400  # no CSRF token
    done = bulk(ops, ids[:3], key="bulk-1")
    assert done.status_code == 303, done.text
    again = bulk(ops, ids[:3], key="bulk-1")
    assert again.status_code == 303
    stored = {a.id: a for a in store.list_alerts(1000)}
    assert [stored[i].acknowledged_by for i in ids] == [ops.user_id] * 3 + [None]
    records = [r for r in store.list_audit(50) if r.action == "acknowledge_alerts"]
    assert len(records) == 1
    assert (records[0].admin_id, sorted(records[0].details["alert_ids"])) == (
        ops.user_id,
        sorted(ids[:3]),
    )
    conflict = bulk(ops, ids[3:], key="bulk-1")  # the same form key for other alerts
    assert conflict.status_code == 409
    assert store.list_alerts(1000) and stored[ids[3]].acknowledged_at is None
