"""The embedded flow in Stripe mode, against localstripe (a third-party fake Stripe).

The app creates the payment intent through the real stripe SDK; the test then
confirms it with a card, as Stripe.js would in the page; localstripe sends a
signed ``payment_intent.succeeded`` to the app's webhook, which credits once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.firebase_auth_emulator import DEFAULT_PROJECT, FirebaseAuthEmulator
from tests.support.firebase_tokens import emulator_id_token
from tests.support.localstripe_server import API_KEY, LocalStripe
from tests.support.purchases import wait_for
from tests.support.server import AppServer

PROJECT = DEFAULT_PROJECT  # the Auth emulator's
SECRET = "whsec_localstripe_embedded"


@pytest.fixture
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe() as server:
        yield server


@pytest.fixture
def stripe_app(
    localstripe: LocalStripe, tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator
) -> Iterator[AppServer]:
    # firebase-admin checks revocation against the user record: the user must exist.
    firebase_auth_emulator.create_user("uid-embedded", "embedded@example.com")
    server = AppServer(
        {
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_API_BASE": localstripe.url,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "FIREBASE_PROJECT_ID": PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": firebase_auth_emulator.host,
            "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",
        }
    ).start()
    yield server
    server.stop()


def api(app: AppServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    token = emulator_id_token(PROJECT, "uid-embedded", "embedded@example.com")
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{app.url}{path}", headers=headers, timeout=30, **kwargs)


def pay_in_the_page(localstripe: LocalStripe, intent_id: str) -> str:
    """What Stripe.js does with the Payment Element: attach a card and confirm."""
    with localstripe.client() as client:
        card = localstripe.test_card(client)
        # localstripe takes the card on an update, not on confirm itself
        client.v1.payment_intents.update(intent_id, {"payment_method": card.id})
        return str(client.v1.payment_intents.confirm(intent_id).status)


def test_a_payment_intent_made_by_the_app_is_credited_by_localstripes_webhook(
    stripe_app: AppServer, localstripe: LocalStripe
) -> None:
    localstripe.register_webhook(
        "app", f"{stripe_app.url}/api/stripe/webhook", SECRET, ["payment_intent.succeeded"]
    )
    started = api(
        stripe_app,
        "POST",
        "/api/tokens/create-payment-intent",
        json={"package": "popular"},
        headers={"Idempotency-Key": "pay-here-1"},
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert (body["amount"], body["currency"], body["tokens"]) == (999, "usd", 110)
    assert body["client_secret"]
    again = api(
        stripe_app,
        "POST",
        "/api/tokens/create-payment-intent",
        json={"package": "popular"},
        headers={"Idempotency-Key": "pay-here-1"},
    )
    assert again.json()["payment_intent_id"] == body["payment_intent_id"]

    assert pay_in_the_page(localstripe, body["payment_intent_id"]) == "succeeded"

    def state() -> str:
        answer = api(stripe_app, "GET", f"/api/tokens/purchases/{body['purchase_id']}")
        return str(answer.json()["purchase"]["state"])

    wait_for(lambda: state() == "paid", "localstripe's payment_intent.succeeded", timeout=20)
    balance = api(stripe_app, "GET", "/api/tokens/balance").json()
    assert balance["balance"] == 110
    assert "payment_intent.succeeded: paid" in stripe_app.output()
