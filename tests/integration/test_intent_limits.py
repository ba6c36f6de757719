"""Embedded payments under the purchase limits, over HTTP on both stores: a declined
intent keeps its slot while it can be paid, three declines cancel it (the slot frees,
the purchase fails, no card pays it any more), and the issue's reproduction (twelve
starter intents, each declined once then paid) ends with five credited and a 429."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import RunningApp
from tests.support.purchases import Buyer, wait_for
from tests.support.server import tokens_cli

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
STARTER_TOKENS = 50


def start_intent(buyer: Buyer) -> tuple[int, dict[str, Any]]:
    answer = buyer.post("/api/tokens/create-payment-intent", json={"package": "starter"})
    body: dict[str, Any] = answer.json()
    if answer.status_code == 429:
        assert body["code"] == "purchase_limit_reached"
        assert int(answer.headers["Retry-After"]) > 0
    return answer.status_code, body


def confirm(buyer: Buyer, started: dict[str, Any], card: str) -> int:
    answer = buyer.post(
        f"/sandbox/payment-intents/{started['payment_intent_id']}/confirm",
        json={"card_number": card, "client_secret": started["client_secret"]},
    )
    return answer.status_code


def delivered(buyer: Buyer) -> None:
    wait_for(lambda: buyer.get("/sandbox/deliveries").json()["pending"] == 0, "deliveries")


def state_of(buyer: Buyer, purchase_id: str) -> str:
    return str(buyer.get(f"/api/tokens/purchases/{purchase_id}").json()["purchase"]["state"])


def test_twelve_intents_declined_once_then_paid_credit_five(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, f"repro-{running_app.kind}@example.com")
    answers = []
    for _ in range(12):
        status, started = start_intent(buyer)
        answers.append(status)
        if status != 200:
            continue
        assert confirm(buyer, started, DECLINED_CARD) == 402
        delivered(buyer)  # the decline reaches the app before the card that pays
        assert confirm(buyer, started, GOOD_CARD) == 200
    assert answers == [200] * 5 + [429] * 7
    wait_for(lambda: buyer.balance() == 5 * STARTER_TOKENS, "five credits")
    delivered(buyer)
    assert buyer.balance() == 5 * STARTER_TOKENS
    assert [t["type"] for t in buyer.history()] == ["purchase"] * 5


def test_three_declines_cancel_the_intent_and_free_its_slot(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, f"declines-{running_app.kind}@example.com")
    status, started = start_intent(buyer)
    assert status == 200
    for attempt in range(1, 4):
        assert confirm(buyer, started, DECLINED_CARD) == 402
        delivered(buyer)
        if attempt < 3:  # still payable, so still open and counting
            assert state_of(buyer, started["purchase_id"]) == "pending"
    wait_for(lambda: state_of(buyer, started["purchase_id"]) == "failed", "the cancel")
    assert confirm(buyer, started, GOOD_CARD) == 402  # Stripe refuses a canceled intent
    stored = running_app.store.get_purchase(started["purchase_id"])
    assert stored is not None and stored.declines == 3

    # the canceled intent no longer counts: five more can start, the sixth cannot
    assert [start_intent(buyer)[0] for _ in range(6)] == [200] * 5 + [429]
    delivered(buyer)
    assert buyer.balance() == 0


def test_the_periodic_job_cancels_no_intent_younger_than_a_checkout(
    running_app: RunningApp,
) -> None:
    buyer = Buyer(running_app.url, f"periodic-{running_app.kind}@example.com")
    status, started = start_intent(buyer)
    assert status == 200
    done = tokens_cli(running_app.server.env, "release-expired-holds")
    assert done.returncode == 0, done.stderr
    assert "canceled 0 unpaid payment intents past the checkout expiry" in done.stdout
    assert state_of(buyer, started["purchase_id"]) == "pending"
    assert confirm(buyer, started, GOOD_CARD) == 200
