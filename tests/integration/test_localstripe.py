"""A signed webhook sent by localstripe, a third-party fake Stripe, reaches the app.

localstripe runs as its own process; the real stripe SDK creates a card
payment method and a 9.99 USD payment intent there and confirms it, and
localstripe then sends ``payment_intent.succeeded`` to two webhooks that both
lead to the app's ``/api/stripe/webhook`` (through a relay that records the
app's answers): one signed with the app's webhook secret, one with another.
The app processes the first (this intent is not one of its purchases, so the
outcome is ``no_purchase``) and refuses the second for its signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import stripe

from tests.support.localstripe_server import LocalStripe, WebhookRelay
from tests.support.server import AppServer

APP_SECRET = "whsec_localstripe_app_secret"
WRONG_SECRET = "whsec_localstripe_not_the_apps"
EVENT = "payment_intent.succeeded"
DELIVERY_TIMEOUT_S = 15.0  # localstripe waits 1 s before it sends an event


def wait_until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DELIVERY_TIMEOUT_S}s:\n{what()}")
        time.sleep(0.05)


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer({"STRIPE_WEBHOOK_SECRET": APP_SECRET}).start()
    yield server
    server.stop()


@pytest.fixture
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe() as server:
        yield server


def pay_999_usd(localstripe: LocalStripe) -> stripe.PaymentIntent:
    with localstripe.client() as client:
        card = localstripe.test_card(client)
        intent = client.v1.payment_intents.create(
            {"amount": 999, "currency": "usd", "payment_method": card.id}
        )
        assert intent.status == "requires_confirmation"
        return client.v1.payment_intents.confirm(intent.id)


def test_localstripe_webhook_is_accepted_and_a_wrong_secret_refused(
    app: AppServer, localstripe: LocalStripe
) -> None:
    with WebhookRelay(f"{app.url}/api/stripe/webhook") as relay:
        localstripe.register_webhook("good", f"{relay.url}/good", APP_SECRET, [EVENT])
        localstripe.register_webhook("tampered", f"{relay.url}/tampered", WRONG_SECRET, [EVENT])

        intent = pay_999_usd(localstripe)
        assert (intent.status, intent.amount, intent.currency) == ("succeeded", 999, "usd")

        good, tampered = relay.wait_for(2, timeout=DELIVERY_TIMEOUT_S)

    # localstripe sent the one event, the same bytes to both webhooks, signed per webhook
    assert (good.name, tampered.name) == ("good", "tampered")
    assert good.body == tampered.body
    event = json.loads(good.body)
    assert event["type"] == EVENT
    assert event["id"].startswith("evt_")
    payment = event["data"]["object"]
    assert (payment["id"], payment["amount"], payment["currency"]) == (intent.id, 999, "usd")
    assert good.signature is not None
    assert tampered.signature is not None
    assert good.signature.startswith(f"t={event['created']},v1=")
    assert tampered.signature.split(",")[0] == f"t={event['created']}"
    assert good.signature != tampered.signature

    # what the app answered to each delivery
    assert good.status == 200
    assert good.answer == {"success": True, "received": True, "outcome": "no_purchase"}
    assert tampered.status == 400
    assert tampered.answer == {
        "success": False,
        "error": "no matching signature for any webhook secret",
        "code": "bad_signature",
    }

    # the app's log: one event processed, one signature rejected
    processed = f"stripe event {event['id']} {EVENT}: no_purchase"
    rejected = f"webhook signature rejected: {tampered.answer['error']}"
    wait_until(lambda: processed in app.output() and rejected in app.output(), app.output)
    assert app.output().count(f"stripe event {event['id']} ") == 1
    assert app.output().count("webhook signature rejected") == 1

    # localstripe's own log: it saw the app's 200 for one and 400 for the other
    delivered = f'webhook "{EVENT}" successfully delivered'
    failed = f'webhook "{EVENT}" failed with response code 400'
    wait_until(
        lambda: delivered in localstripe.output() and failed in localstripe.output(),
        localstripe.output,
    )
    assert localstripe.output().count(delivered) == 1
    assert localstripe.output().count(failed) == 1
