"""The embedded flow under gunicorn: payment intent, sandbox confirm, signed webhook, credit.

Also: the purchase status the success page polls, and a checkout session's own
payment intent, whose ``payment_intent.succeeded`` must never credit again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.purchases import Buyer, buy, event, send, wait_for
from tests.support.server import AppServer
from tests.support.stripe_fixtures import fixture

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def start_intent(buyer: Buyer, package: str = "popular", key: str | None = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    response = buyer.post(
        "/api/tokens/create-payment-intent", json={"package": package}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def confirm(buyer: Buyer, started: dict[str, Any], card: str) -> requests.Response:
    return buyer.post(
        f"/sandbox/payment-intents/{started['payment_intent_id']}/confirm",
        json={"card_number": card, "client_secret": started["client_secret"]},
    )


def purchase(buyer: Buyer, purchase_id: str) -> dict[str, Any]:
    body: dict[str, Any] = buyer.get(f"/api/tokens/purchases/{purchase_id}").json()
    return body


def state_of(buyer: Buyer, purchase_id: str) -> str:
    return str(purchase(buyer, purchase_id)["purchase"]["state"])


def test_an_embedded_payment_is_credited_once(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "embedded@example.com")
    started = start_intent(buyer, "popular", key="click-1")
    assert {k: started[k] for k in ("amount", "currency", "tokens")} == {
        "amount": 999,
        "currency": "usd",
        "tokens": 110,
    }
    assert started["client_secret"].startswith(started["payment_intent_id"] + "_secret_")
    assert start_intent(buyer, "popular", key="click-1") == started  # a double click
    assert state_of(buyer, started["purchase_id"]) == "pending"

    answer = confirm(buyer, started, GOOD_CARD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "succeeded"
    wait_for(lambda: state_of(buyer, started["purchase_id"]) == "paid", "the credit")
    status = purchase(buyer, started["purchase_id"])
    assert status["balance"] == 110
    assert status["purchase"]["source"] == "payment_intent"
    assert status["purchase"]["pack_name"] == "Popular"

    assert confirm(buyer, started, GOOD_CARD).status_code == 200  # confirming again is a no-op
    wait_for(lambda: not buyer.get("/sandbox/deliveries").json()["pending"], "deliveries")
    assert buyer.balance() == 110
    assert [(t["type"], t["amount"]) for t in buyer.history()] == [("purchase", 110)]


def test_a_decline_leaves_the_purchase_open_and_another_card_pays_it(
    sandbox_app: AppServer,
) -> None:
    buyer = Buyer(sandbox_app.url, "declined-embedded@example.com")
    started = start_intent(buyer, "starter")
    declined = confirm(buyer, started, DECLINED_CARD)
    assert declined.status_code == 402
    assert declined.json() == {
        "success": False,
        "error": "Your card was declined.",
        "code": "card_declined",
    }
    wait_for(lambda: buyer.pending_deliveries() == 0, "payment_failed to be delivered")
    # Stripe leaves a declined intent open for another card: so does the purchase.
    assert state_of(buyer, started["purchase_id"]) == "pending"
    assert buyer.balance() == 0

    assert confirm(buyer, started, GOOD_CARD).status_code == 200
    wait_for(lambda: state_of(buyer, started["purchase_id"]) == "paid", "the late success")
    assert buyer.balance() == 50


def test_confirming_needs_the_client_secret(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "secret@example.com")
    started = start_intent(buyer)
    forged = {**started, "client_secret": started["payment_intent_id"] + "_secret_guess"}
    assert confirm(buyer, forged, GOOD_CARD).status_code == 404
    missing = buyer.post(
        f"/sandbox/payment-intents/{started['payment_intent_id']}/confirm",
        json={"card_number": GOOD_CARD},
    )
    assert missing.status_code == 400
    assert state_of(buyer, started["purchase_id"]) == "pending"


def test_a_purchase_is_visible_only_to_its_buyer(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "owner@example.com")
    other = Buyer(sandbox_app.url, "nosy@example.com")
    started = start_intent(buyer)
    response = other.get(f"/api/tokens/purchases/{started['purchase_id']}")
    assert response.status_code == 404
    assert response.json()["code"] == "purchase_not_found"
    signed_out = requests.get(
        f"{sandbox_app.url}/api/tokens/purchases/{started['purchase_id']}", timeout=10
    )
    assert signed_out.status_code == 401


def test_bad_packages_and_limits_apply_to_the_embedded_flow(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "limits-embedded@example.com")
    unknown = buyer.post("/api/tokens/create-payment-intent", json={"package": "gold"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "unknown_package")
    for n in range(5):  # the hourly limit counts both flows
        if n % 2:
            buyer.checkout("starter")
        else:
            start_intent(buyer, "starter")
    refused = buyer.post("/api/tokens/create-payment-intent", json={"package": "starter"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_a_checkout_payment_intent_is_never_credited_again(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "checkout-pi@example.com")
    bought = buy(sandbox_app.url, buyer, "popular")
    assert bought["outcome"]["outcome"] == "paid"
    intent = fixture(
        "payment_intent",
        id=bought["payment_intent"],
        status="succeeded",
        amount=999,
        amount_received=999,
        currency="usd",
        metadata={"purchase_id": bought["purchase_id"]},
    )
    answer = send(sandbox_app.url, event("payment_intent.succeeded", intent))
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "no_purchase"
    assert buyer.balance() == 110
    assert len(buyer.history()) == 1


@pytest.mark.parametrize(
    ("capture_method", "state", "balance"),
    [("automatic", "paid", 50), ("manual", "needs_review", 0)],
)
def test_an_intent_without_amount_received_counts_only_under_automatic_capture(
    sandbox_app: AppServer, capture_method: str, state: str, balance: int
) -> None:
    buyer = Buyer(sandbox_app.url, f"{capture_method}-capture@example.com")
    started = start_intent(buyer, "starter")
    intent = fixture(
        "payment_intent",
        id=started["payment_intent_id"],
        status="succeeded",
        amount=499,
        currency="usd",
        capture_method=capture_method,
    )
    del intent["amount_received"]  # an older shape, as localstripe sends
    answer = send(sandbox_app.url, event("payment_intent.succeeded", intent))
    assert (answer.status_code, answer.json()["outcome"]) == (200, state)
    assert buyer.balance() == balance


@pytest.mark.parametrize("path", ["create-payment-intent", "create-checkout-session"])
def test_a_key_reused_for_another_pack_is_a_conflict(sandbox_app: AppServer, path: str) -> None:
    buyer = Buyer(sandbox_app.url, f"reused-key-{path}@example.com")
    url = f"/api/tokens/{path}"
    first = buyer.post(url, json={"package": "starter"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200
    again = buyer.post(url, json={"package": "pro"}, headers={"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json()["code"]) == (409, "idempotency_conflict")
    same = buyer.post(url, json={"package": "starter"}, headers={"Idempotency-Key": "k-1"})
    assert same.json()["purchase_id"] == first.json()["purchase_id"]


def test_declined_intents_still_count_toward_the_purchase_limits(sandbox_app: AppServer) -> None:
    """Each declined intent can still be paid, so it keeps its slot: five declined then
    paid intents leave no room for a sixth, and no more than five are credited."""
    buyer = Buyer(sandbox_app.url, "declined-limits@example.com")
    started = [start_intent(buyer, "starter") for _ in range(5)]
    for intent in started:
        assert confirm(buyer, intent, DECLINED_CARD).status_code == 402
    wait_for(lambda: buyer.pending_deliveries() == 0, "payment_failed events to be delivered")
    sixth = buyer.post("/api/tokens/create-payment-intent", json={"package": "starter"})
    assert (sixth.status_code, sixth.json()["code"]) == (429, "purchase_limit_reached")
    for intent in started:
        assert confirm(buyer, intent, GOOD_CARD).status_code == 200
    wait_for(lambda: buyer.balance() == 5 * 50, "the five paid intents to be credited")
    assert [t["type"] for t in buyer.history()] == ["purchase"] * 5
