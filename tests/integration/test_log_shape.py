"""What an operator reads: the JSON log lines of a purchase, a refund and a refused webhook.

The app runs under gunicorn with LOG_FORMAT=json, as in production. Every line
it writes must be a JSON object Cloud Logging can read, carry the fields the
README's queries use, and never contain a secret, a signature, a cookie, a card
number or a full email address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import DEV_WEBHOOK_SECRET
from tests.support.purchases import Buyer, send, wait_for
from tests.support.server import AppServer

PROJECT = "demo-logs"
TRACE_ID = "0123456789abcdef0123456789abcdef"
SECRET_KEY = "s3cret-session-signing-key-for-the-log-test"
EMAIL = "log.reader@example.com"
CARD = "4242 4242 4242 4242"
TRACE = "logging.googleapis.com/trace"
LOOKED_UP = "victim.person@example.com"
CLIENT_SECRET = "pi_3PlogShape0001_secret_Zx9Yw8Vu7Ts6"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer(
        {"LOG_FORMAT": "json", "GOOGLE_CLOUD_PROJECT": PROJECT, "SECRET_KEY": SECRET_KEY}
    ).start()
    yield server
    server.stop()


def lines(server: AppServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def story(app: AppServer) -> dict[str, Any]:
    """A card purchase, a full refund of it, and a webhook with a forged signature."""
    buyer = Buyer(app.url, EMAIL, "logreader")
    trace = {"X-Cloud-Trace-Context": f"{TRACE_ID}/42;o=1"}
    started = buyer.post(
        "/api/tokens/create-checkout-session", json={"package": "popular"}, headers=trace
    ).json()
    paid = buyer.pay_on_checkout_page(started["url"], CARD, method="card")
    assert paid.status_code == 303
    wait_for(lambda: buyer.balance() == 110, "the credit")
    refund = buyer.post(f"/sandbox/sessions/{started['session_id']}/refund", data={})
    assert refund.status_code in (200, 303)
    wait_for(lambda: buyer.balance() == 0, "the refund's claw-back")
    forged = send(
        app.url,
        b'{"id": "evt_forged", "type": "checkout.session.completed"}',
        signature="t=1,v1=" + "ab" * 32,
    )
    assert forged.status_code == 400
    # An operator's look-up by email, and Stripe.js's return to the success page with the
    # payment intent's client secret: both URLs reach the access log.
    buyer.get("/admin/users", params={"q": LOOKED_UP})
    buyer.get("/token-purchase-success", params={"payment_intent_client_secret": CLIENT_SECRET})
    wait_for(lambda: not buyer.get("/sandbox/deliveries").json()["pending"], "deliveries")
    wait_for(lambda: "webhook signature rejected" in app.output(), "the rejection's log line")
    return {
        "buyer": buyer,
        "purchase_id": started["purchase_id"],
        "cookie": buyer.http.cookies.get("session"),
    }


def test_every_line_is_a_json_object_with_a_severity(app: AppServer, story: dict[str, Any]) -> None:
    entries = lines(app)
    assert len(entries) > 10
    assert all(isinstance(e, dict) for e in entries)
    assert {e["severity"] for e in entries} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert all(isinstance(e.get("message"), str) and e["message"] for e in entries)


def test_access_lines_carry_http_request_request_id_and_trace(
    app: AppServer, story: dict[str, Any]
) -> None:
    access = [e for e in lines(app) if "httpRequest" in e]
    checkout = next(
        e for e in access if "create-checkout-session" in e["httpRequest"]["requestUrl"]
    )
    request = checkout["httpRequest"]
    assert request["requestMethod"] == "POST"
    assert request["status"] == 200
    assert request["latency"].endswith("s")
    assert {"responseSize", "userAgent", "remoteIp", "protocol"} <= request.keys()
    assert checkout[TRACE] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert len(checkout["request_id"]) == 32
    forged = next(e for e in access if e["httpRequest"]["status"] == 400)
    assert forged["severity"] == "WARNING"


def test_purchase_refund_and_event_lines_carry_their_ids(
    app: AppServer, story: dict[str, Any]
) -> None:
    entries = lines(app)
    buyer: Buyer = story["buyer"]
    credited = next(e for e in entries if "credited" in e["message"] and "purchase_id" in e)
    assert (credited["purchase_id"], credited["user_id"]) == (story["purchase_id"], buyer.user_id)
    assert credited["severity"] == "INFO"
    assert credited["request_id"]  # written while serving the webhook
    events = {e["event_type"]: e for e in entries if e["message"].startswith("stripe event ")}
    assert events["checkout.session.completed"]["outcome"] == "paid"
    # The credit, made in the commit that recorded the event, is on the event's one line.
    assert events["checkout.session.completed"] is credited
    assert sum(story["purchase_id"] in e["message"] for e in entries) == 1
    assert events["charge.refunded"]["outcome"] == "refund_clawed_back"
    assert all(e["event_id"].startswith("evt_") for e in events.values())
    rejected = next(e for e in entries if "webhook signature rejected" in e["message"])
    assert (rejected["severity"], rejected["alert_type"]) == ("WARNING", "bad_signature")


def test_no_secret_signature_cookie_card_or_email_is_logged(
    app: AppServer, story: dict[str, Any]
) -> None:
    output = app.output()
    cookie = story["cookie"]
    assert cookie and cookie not in output
    for secret in (DEV_WEBHOOK_SECRET, SECRET_KEY, EMAIL, CARD, CARD.replace(" ", ""), "v1="):
        assert secret not in output, secret
    for leaked in ("victim.person", "Zx9Yw8Vu7Ts6"):
        assert leaked not in output, leaked
    urls = [e["httpRequest"]["requestUrl"] for e in lines(app) if "httpRequest" in e]
    assert any(url.endswith("/admin/users?q=v***@example.com") for url in urls), urls
