"""Buying tokens end to end in sandbox mode under gunicorn: the development flow.

The sandbox plays Stripe: its checkout page takes Stripe's test cards and its
signed events reach the app's webhook over HTTP, as in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def pay(buyer: Buyer, checkout_url: str, **form: str) -> tuple[int, str]:
    response = buyer.post(
        checkout_url.removeprefix(buyer.base_url),
        data={"csrf_token": buyer.csrf, **form},
        allow_redirects=False,
    )
    return response.status_code, response.headers.get("Location", response.text)


def test_a_card_payment_credits_the_pack_once(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "card@example.com")
    started = buyer.checkout("popular")
    page = buyer.get(started["url"].removeprefix(sandbox_app.url))
    assert page.status_code == 200 and "4242 4242 4242 4242" in page.text
    status, location = pay(buyer, started["url"], card_number="4242 4242 4242 4242")
    assert status == 303
    assert location.endswith(f"/token-purchase-success?session_id={started['session_id']}")
    wait_for(lambda: buyer.balance() == 110, "the webhook to credit 110 tokens")
    success = buyer.get(location.removeprefix(sandbox_app.url)).text
    assert re.search(r'data-testid="balance">110<', success)
    wait_for(lambda: buyer.pending_deliveries() == 0, "webhook deliveries to finish")
    assert [(t["type"], t["amount"]) for t in buyer.history()] == [("purchase", 110)]


def test_a_declined_card_credits_nothing(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "declined@example.com")
    started = buyer.checkout("starter")
    status, body = pay(buyer, started["url"], card_number="4000 0000 0000 0002")
    assert status == 402
    assert "declined" in body
    assert buyer.pending_deliveries() == 0  # no event was queued for a declined card
    assert buyer.balance() == 0
    # The session stays open: a good card then pays it.
    assert pay(buyer, started["url"], card_number="4242424242424242")[0] == 303
    wait_for(lambda: buyer.balance() == 50, "the retry with a good card to be credited")


def test_a_bank_debit_credits_only_when_it_settles(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "bank@example.com")
    started = buyer.checkout("pro")
    status, location = pay(buyer, started["url"], method="bank_debit")
    assert status == 303
    wait_for(
        lambda: buyer.pending_deliveries() == 0, "the completed (unpaid) event to be delivered"
    )
    assert buyer.balance() == 0
    assert (
        'data-testid="purchase-state">awaiting_payment<'
        in buyer.get(location.removeprefix(sandbox_app.url)).text
    )
    settle = f"/sandbox/sessions/{started['session_id']}/settle"
    assert (
        buyer.post(settle, data={"csrf_token": buyer.csrf}, allow_redirects=False).status_code
        == 303
    )
    wait_for(lambda: buyer.balance() == 250, "the async success event to credit 250 tokens")
    buyer.post(settle, data={"csrf_token": buyer.csrf})  # settling twice sends nothing new
    wait_for(lambda: buyer.pending_deliveries() == 0, "deliveries to finish")
    assert [t["amount"] for t in buyer.history()] == [250]


def test_a_failed_bank_debit_credits_nothing(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "bankfail@example.com")
    started = buyer.checkout("starter")
    pay(buyer, started["url"], method="bank_debit")
    buyer.post(f"/sandbox/sessions/{started['session_id']}/fail", data={"csrf_token": buyer.csrf})
    wait_for(lambda: buyer.pending_deliveries() == 0, "deliveries to finish")
    assert buyer.balance() == 0


def test_checkout_errors_are_clear(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "errors@example.com")
    unknown = buyer.post("/api/tokens/create-checkout-session", json={"package": "gold"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "unknown_package")
    missing = buyer.post("/api/tokens/create-checkout-session", json={})
    assert missing.status_code == 400
    no_csrf = buyer.http.post(
        f"{sandbox_app.url}/api/tokens/create-checkout-session", json={"package": "pro"}, timeout=10
    )
    assert (no_csrf.status_code, no_csrf.json()["code"]) == (400, "csrf_failed")
    signed_out = requests.post(
        f"{sandbox_app.url}/api/tokens/create-checkout-session", json={"package": "pro"}, timeout=10
    )
    assert (signed_out.status_code, signed_out.json()["code"]) == (401, "not_signed_in")


def test_the_sixth_checkout_in_an_hour_is_refused_with_retry_after(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "limits@example.com")
    for _ in range(5):
        buyer.checkout("starter")
    refused = buyer.post("/api/tokens/create-checkout-session", json={"package": "starter"})
    assert (refused.status_code, refused.json()["code"]) == (429, "purchase_limit_reached")
    assert 0 < int(refused.headers["Retry-After"]) <= 3600


def test_one_idempotency_key_makes_one_session(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "double@example.com")
    headers = {"Idempotency-Key": "click-1"}
    first = buyer.post(
        "/api/tokens/create-checkout-session", json={"package": "pro"}, headers=headers
    ).json()
    second = buyer.post(
        "/api/tokens/create-checkout-session", json={"package": "pro"}, headers=headers
    ).json()
    assert first["session_id"] == second["session_id"]


def test_the_dashboard_sends_signed_refund_and_dispute_events(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "refund@example.com")
    started = buyer.checkout("starter")
    pay(buyer, started["url"], card_number="4242424242424242")
    wait_for(lambda: buyer.balance() == 50, "the purchase to be credited")
    for action in ("refund", "dispute"):
        response = buyer.post(
            f"/sandbox/sessions/{started['session_id']}/{action}",
            data={"csrf_token": buyer.csrf},
            allow_redirects=False,
        )
        assert response.status_code == 303
    # Delivered means the app verified the signature and answered 2xx.
    wait_for(
        lambda: buyer.pending_deliveries() == 0, "the refund and dispute events to be delivered"
    )
    dashboard = buyer.get("/sandbox/dashboard").text
    assert started["session_id"] in dashboard
