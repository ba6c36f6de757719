"""The app in Stripe mode under gunicorn, against a local Stripe-compatible API.

Users sign in with Firebase ID tokens (emulator-shaped), there is no dev
sign-in, checkout goes through StripeService, and `flask tokens sync-stripe`
records the price ids that checkout then uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services.payments.stripe_gateway import MAX_NETWORK_RETRIES
from tests.support.fake_stripe_api import FakeStripeApi, running_fake
from tests.support.firebase_auth_emulator import DEFAULT_PROJECT, FirebaseAuthEmulator
from tests.support.firebase_tokens import emulator_id_token
from tests.support.purchases import event, send, session_object, wait_for
from tests.support.server import AppServer, tokens_cli
from tests.support.stripe_fixtures import fixture

PROJECT = DEFAULT_PROJECT  # the Auth emulator's
USERS = ("uid-ann", "uid-bob", "uid-carol", "uid-dan")
SECRET = "whsec_stripe_mode_test"

fake_stripe = pytest.fixture(running_fake)


@pytest.fixture
def stripe_app(
    fake_stripe: FakeStripeApi, tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator
) -> Iterator[AppServer]:
    # firebase-admin checks revocation against the user record: the users must exist.
    for uid in USERS:
        firebase_auth_emulator.create_user(uid, f"{uid}@example.com", verified=True)
    server = AppServer(
        {
            "STRIPE_SECRET_KEY": "sk_test_token_store",
            "STRIPE_API_BASE": fake_stripe.url,
            "STRIPE_WEBHOOK_SECRET": f"{SECRET},whsec_previous_secret",
            "FIREBASE_PROJECT_ID": PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": firebase_auth_emulator.host,
            "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",
        }
    ).start()
    yield server
    server.stop()


def bearer(uid: str, project: str = PROJECT) -> dict[str, str]:
    verified: dict[str, object] = {"email_verified": True}
    token = emulator_id_token(project, uid, f"{uid}@example.com", verified)
    return {"Authorization": f"Bearer {token}"}


def checkout(
    app: AppServer, uid: str, package: str = "popular", headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        f"{app.url}/api/tokens/create-checkout-session",
        json={"package": package},
        headers={**bearer(uid), **(headers or {})},
        timeout=60,
    )


def sync(app: AppServer) -> str:
    result = tokens_cli(app.env, "sync-stripe")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_dev_sign_in_and_the_sandbox_do_not_exist(stripe_app: AppServer) -> None:
    for path in ("/auth/dev-login", "/sandbox/dashboard"):
        assert requests.post(f"{stripe_app.url}{path}", json={}, timeout=10).status_code in (
            404,
            405,
        )
    assert requests.get(f"{stripe_app.url}/sandbox/dashboard", timeout=10).status_code == 404


def test_a_firebase_token_signs_in_and_opens_the_account(stripe_app: AppServer) -> None:
    response = requests.get(
        f"{stripe_app.url}/api/tokens/balance", headers=bearer("uid-ann"), timeout=10
    )
    assert response.json() == {
        "success": True,
        "balance": 0,
        "debt": 0,
        "status": "active",
        "available": 0,
        "held": 0,
    }
    me = requests.get(f"{stripe_app.url}/auth/me", headers=bearer("uid-ann"), timeout=10).json()
    assert me["user"] == {"id": "uid-ann", "email": "uid-ann@example.com", "username": None}


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-jwt"},
        bearer("uid-ann", project="another-project"),
        {},
    ],
    ids=["garbage", "other-project", "none"],
)
def test_bad_or_missing_tokens_are_401(stripe_app: AppServer, headers: dict[str, str]) -> None:
    response = requests.get(f"{stripe_app.url}/api/tokens/balance", headers=headers, timeout=10)
    assert (response.status_code, response.json()["code"]) == (401, "not_signed_in")


def test_checkout_goes_through_stripe_with_the_servers_price(
    stripe_app: AppServer, fake_stripe: FakeStripeApi
) -> None:
    response = checkout(stripe_app, "uid-bob")
    assert response.status_code == 200, response.text  # a bearer call needs no CSRF token
    body = response.json()
    sent = fake_stripe.last("POST", "/v1/checkout/sessions")
    assert sent.idempotency_key == f"checkout-{body['purchase_id']}"
    assert sent.params["mode"] == "payment"
    assert sent.params["client_reference_id"] == "uid-bob"
    assert sent.params["line_items"][0]["price_data"]["unit_amount"] == "999"
    assert sent.params["success_url"].endswith(
        "/token-purchase-success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert body["url"] == sent_url(fake_stripe, body["session_id"])
    customers = fake_stripe.find("POST", "/v1/customers")
    assert [c.idempotency_key for c in customers] == ["customer-uid-bob"]
    checkout(stripe_app, "uid-bob", "pro")
    assert len(fake_stripe.find("POST", "/v1/customers")) == 1  # stored on the account


def sent_url(fake: FakeStripeApi, session_id: str) -> str:
    return str(fake.objects["checkout/sessions"][session_id]["url"])


def test_sync_stripe_records_prices_that_checkout_then_uses(
    stripe_app: AppServer, fake_stripe: FakeStripeApi
) -> None:
    first = sync(stripe_app)
    assert first.count("created") == 4
    assert "recorded 4 price ids" in first
    again = sync(stripe_app)
    assert again.count("unchanged") == 4
    checkout(stripe_app, "uid-carol", "creator")
    sent = fake_stripe.last("POST", "/v1/checkout/sessions")
    line = sent.params["line_items"][0]
    assert "price_data" not in line
    assert line["price"].startswith("price_")


def test_a_signed_event_credits_and_an_old_secret_still_verifies(stripe_app: AppServer) -> None:
    body = checkout(stripe_app, "uid-dan").json()
    obj = session_object(body["session_id"], body["purchase_id"], "uid-dan")
    assert send(stripe_app.url, event("checkout.session.completed", obj), secret=SECRET).ok
    other = session_object(body["session_id"], body["purchase_id"], "uid-dan")
    assert (
        send(
            stripe_app.url,
            event("checkout.session.completed", other),
            secret="whsec_previous_secret",
        ).json()["outcome"]
        == "paid"
    )
    balance = requests.get(
        f"{stripe_app.url}/api/tokens/balance", headers=bearer("uid-dan"), timeout=10
    ).json()["balance"]
    assert balance == 110


def test_a_checkout_whose_answers_were_lost_is_retried_into_the_same_session(
    stripe_app: AppServer, fake_stripe: FakeStripeApi
) -> None:
    """Stripe made the session but every answer was lost (the SDK's retries too): the
    client's retry with its Idempotency-Key sends identical parameters and gets it back."""
    assert checkout(stripe_app, "uid-dan", "starter").status_code == 200  # the customer exists
    fake_stripe.drop_next_responses(1 + MAX_NETWORK_RETRIES)
    key = {"Idempotency-Key": "dan-lost-answers"}
    lost = checkout(stripe_app, "uid-dan", headers=key)
    assert (lost.status_code, lost.json()["code"]) == (503, "payments_unavailable")
    made = fake_stripe.find("POST", "/v1/checkout/sessions")[-1]
    started = int(time.time())
    wait_for(lambda: int(time.time()) > started, "the clock to move on by a second")

    retried = checkout(stripe_app, "uid-dan", headers=key)
    assert retried.status_code == 200, retried.text
    again = fake_stripe.find("POST", "/v1/checkout/sessions")[-1]
    assert again.params == made.params  # the same expires_at: Stripe replays, no idempotency_error
    sessions = [
        s
        for s in fake_stripe.objects["checkout/sessions"].values()
        if s["metadata"].get("purchase_id") == retried.json()["purchase_id"]
    ]
    assert [s["id"] for s in sessions] == [retried.json()["session_id"]]
    status = requests.get(
        f"{stripe_app.url}/api/tokens/purchases/{retried.json()['purchase_id']}",
        headers=bearer("uid-dan"),
        timeout=10,
    )
    assert status.json()["purchase"]["state"] == "pending"


def test_the_third_declined_attempt_cancels_the_intent_at_stripe(
    stripe_app: AppServer, fake_stripe: FakeStripeApi
) -> None:
    made = requests.post(
        f"{stripe_app.url}/api/tokens/create-payment-intent",
        json={"package": "starter"},
        headers=bearer("uid-carol"),
        timeout=60,
    )
    assert made.status_code == 200, made.text
    body = made.json()
    intent_id = body["payment_intent_id"]
    declined = fixture(
        "payment_intent",
        id=intent_id,
        status="requires_payment_method",
        amount=499,
        currency="usd",
        metadata={"purchase_id": body["purchase_id"], "user_id": "uid-carol"},
        last_payment_error={"code": "card_declined", "type": "card_error"},
    )
    outcomes = [
        send(
            stripe_app.url, event("payment_intent.payment_failed", declined), secret=SECRET
        ).json()["outcome"]
        for _ in range(3)
    ]
    assert outcomes == ["payment_declined", "payment_declined", "failed"]
    cancel = fake_stripe.last("POST", f"/v1/payment_intents/{intent_id}/cancel")
    assert cancel.params == {"cancellation_reason": "abandoned"}
    assert cancel.idempotency_key == f"cancel-{intent_id}"
    assert fake_stripe.objects["payment_intents"][intent_id]["status"] == "canceled"
    purchase = requests.get(
        f"{stripe_app.url}/api/tokens/purchases/{body['purchase_id']}",
        headers=bearer("uid-carol"),
        timeout=10,
    ).json()["purchase"]
    assert purchase["state"] == "failed"
    # Stripe's own payment_intent.canceled, arriving after, changes nothing more
    canceled = {**declined, "status": "canceled", "cancellation_reason": "abandoned"}
    answer = send(stripe_app.url, event("payment_intent.canceled", canceled), secret=SECRET)
    assert answer.json()["outcome"] == "failed"
