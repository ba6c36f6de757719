"""The dashboard's figures and failed-event list, in process on both stores, and admins by
Firebase custom claim.

In process, so that a storage failure can be injected into one store method
while everything else keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from services.container import Services
from services.errors import StorageUnavailable
from services.ledger.model import format_time, utc_now
from services.payments.model import Purchase, PurchaseState, User
from services.payments.sandbox import SandboxPayments
from tests.support.firebase_auth_emulator import FirebaseAuthEmulator
from tests.support.purchases import event, session_object
from tests.support.stores import StoreUrls
from tests.support.webhooks import WEBHOOK_PATH, delivery

OPS_EMAIL = "ops@example.com"


@pytest.fixture
def app(store_urls: StoreUrls, tmp_path: Path) -> Iterator[Flask]:
    made = create_app(
        {
            "STORE_URL": store_urls.new(busy_timeout_ms=None),
            "SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"),
            "OPERATOR_EMAILS": OPS_EMAIL,
            "SANDBOX_WEBHOOKS": "off",
        }
    )
    yield made
    services(made).store.close()


def services(app: Flask) -> Services:
    found: Services = app.extensions["services"]
    return found


def signed_in(app: Flask, email: str = OPS_EMAIL) -> tuple[FlaskClient, str]:
    client = app.test_client()
    body = client.post("/auth/dev-login", json={"email": email}).get_json()
    return client, str(body["csrf_token"])


def record(
    app: Flask, n: int, at: datetime, state: PurchaseState, amount: int = 999, currency: str = "usd"
) -> Purchase:
    store = services(app).store
    store.ensure_user(User(id="buyer"), at)
    stamp = format_time(at)
    purchase = Purchase(
        id=f"pur_{n:03d}",
        buyer_id="buyer",
        user_id="buyer",
        pack_id="popular",
        tokens=110,
        amount=amount,
        currency=currency,
        state=state,
        created_at=stamp,
        updated_at=stamp,
        session_id=f"cs_test_admin_{n:03d}",
    )
    return store.start_purchase(purchase, None, at)


def block(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}".*?</(?:div|section|table)>', page, re.S)
    assert found is not None, testid
    return found.group(0)


def figures(page: str, testid: str) -> tuple[int, list[str]]:
    part = block(page, testid)
    count = re.search(r"data-count>(\d+)<", part)
    assert count is not None
    return int(count.group(1)), re.findall(r'admin-figure__money">([^<]+)<', part)


def test_todays_and_this_months_sales_and_the_chart(app: Flask) -> None:
    now = utc_now()
    today = now.date()
    record(app, 1, now, PurchaseState.PAID)
    record(app, 2, now, PurchaseState.PAID, amount=1999)
    record(app, 3, now, PurchaseState.PAID, amount=500, currency="eur")
    record(app, 4, now, PurchaseState.FAILED)  # not paid: not counted
    record(app, 5, now, PurchaseState.NEEDS_REVIEW)
    ten_days_ago = now - timedelta(days=10)
    record(app, 6, ten_days_ago, PurchaseState.PAID, amount=499)
    record(app, 7, now - timedelta(days=40), PurchaseState.PAID)  # outside both windows
    client, _ = signed_in(app)
    page = client.get("/admin").get_data(as_text=True)
    assert figures(page, "sales-today") == (3, ["€5.00", "$29.98"])
    same_month = ten_days_ago.month == now.month
    assert figures(page, "sales-month") == (
        (4, ["€5.00", "$34.97"]) if same_month else (3, ["€5.00", "$29.98"])
    )
    assert page.count('class="admin-chart__bar') == 30
    bars = dict(re.findall(r'data-day="([\d-]+)"><title>([^<]+)</title>', page))
    assert bars[today.isoformat()] == f"{today.isoformat()}: 3 paid purchases, $29.98"
    earlier = ten_days_ago.date().isoformat()
    assert bars[earlier] == f"{earlier}: 1 paid purchase, $4.99"
    assert (today - timedelta(days=29)).isoformat() in bars
    assert (today - timedelta(days=30)).isoformat() not in bars
    rows = dict(re.findall(r'<tr data-day="([\d-]+)">(.*?)</tr>', page, re.S))
    assert len(rows) == 30
    assert re.findall(r'class="num">(.*?)</td>', rows[today.isoformat()], re.S)[0] == "3"
    assert "$29.98" in rows[today.isoformat()] and "€5.00" in rows[today.isoformat()]
    assert '<rect class="admin-chart__bar admin-chart__bar--empty"' in page  # days without sales


def webhook(client: FlaskClient, body: dict[str, Any]) -> Any:
    payload, headers = delivery(body)
    return client.post(WEBHOOK_PATH, data=payload, headers=headers)


def failed_rows(client: FlaskClient) -> dict[str, str]:
    page = client.get("/admin").get_data(as_text=True)
    return dict(
        re.findall(r'<tr data-event="([^"]+)">(.*?)</tr>', block(page, "webhook-events"), re.S)
    )


def completed_event(app: Flask) -> dict[str, Any]:
    """A pending purchase, and the checkout.session.completed event that pays it."""
    purchase = record(app, 1, utc_now(), PurchaseState.PENDING)
    return event(
        "checkout.session.completed",
        session_object(str(purchase.session_id), purchase.id, "buyer"),
    )


def fail_credits(
    monkeypatch: pytest.MonkeyPatch, store: object, failure: Callable[..., None]
) -> None:
    """Both ways a paid event credits (its one transaction, the general path) fail."""
    monkeypatch.setattr(store, "paid_event", failure)
    monkeypatch.setattr(store, "apply_for_purchase", failure)


def test_a_failed_webhook_event_is_listed_until_it_goes_through(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = completed_event(app)
    store = services(app).store

    def outage(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("injected outage")

    fail_credits(monkeypatch, store, outage)
    stripe = app.test_client()
    assert webhook(stripe, body).status_code == 503
    assert webhook(stripe, body).status_code == 503
    client, _ = signed_in(app)
    rows = failed_rows(client)
    assert list(rows) == [body["id"]]
    assert "storage_unavailable: injected outage" in rows[body["id"]]
    assert "checkout.session.completed" in rows[body["id"]]
    assert re.search(r'class="num">2</td>', rows[body["id"]])  # two attempts
    monkeypatch.undo()
    assert webhook(stripe, body).get_json()["outcome"] == "paid"
    assert failed_rows(client) == {}
    assert "No failed webhook events" in client.get("/admin").get_data(as_text=True)
    assert store.list_event_failures(10) == []


def test_recording_a_failure_never_hides_the_error(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = completed_event(app)
    store = services(app).store

    def leaky(*args: object, **kwargs: object) -> None:
        raise RuntimeError("card 4242424242424242 in a payload")

    def broken(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("the store is down")

    fail_credits(monkeypatch, store, leaky)
    assert webhook(app.test_client(), body).status_code == 500
    [failure] = store.list_event_failures(5)
    assert failure.error == "RuntimeError"  # the class only: its text may quote anything
    fail_credits(monkeypatch, store, broken)
    monkeypatch.setattr(store, "record_event_failure", broken)
    failed = webhook(app.test_client(), body)
    assert (failed.status_code, failed.get_json()["code"]) == (503, "storage_unavailable")


def claim_headers(
    emulator: FirebaseAuthEmulator, email: str, admin: bool
) -> tuple[str, dict[str, str]]:
    """A user of the Auth emulator and a bearer header with its fresh ID token."""
    uid, _ = emulator.sign_up(email, "secret-pass")
    if admin:
        emulator.set_claims(uid, {"admin": True})
    return uid, {"Authorization": f"Bearer {emulator.sign_in(email, 'secret-pass')}"}


def test_a_firebase_admin_claim_opens_the_dashboard(
    tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator
) -> None:
    app = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",
            "SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"),
            "FIREBASE_PROJECT_ID": firebase_auth_emulator.project_id,
        }
    )
    client = app.test_client()
    admin_id, admin = claim_headers(firebase_auth_emulator, "claimed@example.com", True)
    plain_id, other = claim_headers(firebase_auth_emulator, "plain@example.com", False)
    assert client.get("/admin", headers=admin).status_code == 200
    assert client.get("/admin", headers=other).status_code == 403
    api = "/admin/api/purchases/pur_none"
    assert client.get(api, headers=admin).get_json()["code"] == "purchase_not_found"
    assert client.get(api, headers=other).get_json()["code"] == "forbidden"
    granted = client.post(
        "/admin/api/grants",
        json={"user": plain_id, "amount": 7, "reason": "claim test"},
        headers={**admin, "Idempotency-Key": "claim-1"},
    )
    assert granted.get_json()["balance"] == 7
    [record_] = services(app).store.list_audit(5, target=f"user:{plain_id}")
    assert (record_.admin_id, record_.action) == (admin_id, "grant_tokens")
    services(app).store.close()


def test_days_are_utc_days(app: Flask) -> None:
    """A purchase at 23:59:59 UTC yesterday is not today's, whatever the local zone."""
    now = utc_now()
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    record(app, 1, midnight - timedelta(seconds=1), PurchaseState.PAID)
    record(app, 2, midnight, PurchaseState.PAID)
    client, _ = signed_in(app)
    page = client.get("/admin").get_data(as_text=True)
    assert figures(page, "sales-today")[0] == 1
    yesterday: date = now.date() - timedelta(days=1)
    rows = dict(re.findall(r'<tr data-day="([\d-]+)">(.*?)</tr>', page, re.S))
    assert re.findall(r'class="num">(.*?)</td>', rows[yesterday.isoformat()], re.S)[0] == "1"


def test_the_sandboxs_undelivered_webhooks_are_counted(app: Flask) -> None:
    buyer, csrf = signed_in(app, "sandbox-buyer@example.com")
    started = buyer.post(
        "/api/tokens/create-checkout-session",
        json={"package": "starter"},
        headers={"X-CSRFToken": csrf},
    ).get_json()
    pay_path = "/sandbox/checkout/" + started["session_id"]
    paid = buyer.post(pay_path, data={"csrf_token": csrf, "card_number": "4242424242424242"})
    assert paid.status_code == 303
    pending = cast(SandboxPayments, services(app).payments).pending_deliveries()
    assert pending > 0  # SANDBOX_WEBHOOKS=off: recorded, never sent
    client, _ = signed_in(app)
    events = block(client.get("/admin").get_data(as_text=True), "webhook-events")
    assert re.search(rf'data-testid="pending-deliveries">.*?<strong>{pending}</strong>', events)
