"""Early fraud warnings over HTTP on both stores, with the sandbox as the provider.

An actionable warning refunds the whole payment once (the sandbox then sends
``charge.refunded``, which takes the tokens back: what was spent becomes
debt); with automatic refunds off, for a warning that is not actionable, and
for a payment the app does not know, an alert is all.
"""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.payments.model import Purchase
from tests.integration.conftest import RunningApp
from tests.support.fraud_warnings import warning_event
from tests.support.purchases import Buyer, send, wait_for
from tests.support.stores import AppStarter


def paid(app: RunningApp, spent: int = 0) -> tuple[Buyer, Purchase]:
    """A popular pack paid on the sandbox's checkout page, and ``spent`` tokens spent."""
    buyer = Buyer(app.url, f"efw-{uuid.uuid4().hex[:8]}@example.com")
    started = buyer.checkout("popular")
    buyer.pay_on_checkout_page(started["url"])
    wait_for(lambda: buyer.balance() == 110, "the purchase to be credited")
    wait_for(lambda: buyer.pending_deliveries() == 0, "the sandbox's deliveries")
    if spent:
        spend = buyer.post(
            "/api/tokens/spend", json={"amount": spent}, headers={"Idempotency-Key": "s1"}
        )
        assert spend.status_code == 200, spend.text
    purchase = app.store.get_purchase(started["purchase_id"])
    assert purchase is not None and purchase.payment_intent_id
    return buyer, purchase


def sandbox_refunds(app: RunningApp) -> int:
    with sqlite3.connect(app.server.env["SANDBOX_DB_PATH"]) as conn:
        return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])


def fraud_alerts(app: RunningApp) -> list[dict[str, Any]]:
    alerts = [a for a in app.store.list_alerts() if a.type == "early_fraud_warning"]
    assert all(a.severity == "critical" for a in alerts)
    return [{"purchase_id": a.purchase_id, **a.details} for a in alerts]


def account(buyer: Buyer) -> tuple[int, int]:
    body = buyer.get("/api/tokens/balance").json()
    return int(body["balance"]), int(body["debt"])


def test_an_actionable_warning_refunds_once_and_the_refund_takes_the_tokens(
    start_app: AppStarter,
) -> None:
    app = start_app({})
    buyer, purchase = paid(app, spent=100)
    warning = warning_event(purchase.payment_intent_id)
    with ThreadPoolExecutor(2) as pool:  # Stripe delivering twice at once
        answers = list(pool.map(lambda _: send(app.url, warning), range(2)))
    assert [a.status_code for a in answers] == [200, 200]
    assert "efw_refunded" in {a.json().get("outcome") for a in answers}
    wait_for(lambda: buyer.pending_deliveries() == 0, "charge.refunded to be delivered")
    # The whole payment went back, so all 110 tokens: the 100 spent are debt.
    assert account(buyer) == (0, 100)
    assert sandbox_refunds(app) == 1
    stored = app.store.get_purchase(purchase.id)
    assert stored is not None and stored.refunded_amount == 999

    # The same warning again (a replay under another event id) refunds nothing more.
    again = send(app.url, {**warning, "id": warning["id"] + "_replayed"})
    assert again.json()["outcome"] == "efw_already_refunded"
    assert sandbox_refunds(app) == 1
    assert [t["type"] for t in buyer.history()] == ["refund", "spend", "purchase"]
    alerts = fraud_alerts(app)
    assert {a["purchase_id"] for a in alerts} == {purchase.id}
    assert {a["warning_id"] for a in alerts} == {warning["data"]["object"]["id"]}
    assert "efw_refunded" in {a["outcome"] for a in alerts}


def test_with_automatic_refunds_off_a_warning_is_an_alert_only(start_app: AppStarter) -> None:
    app = start_app({"EARLY_FRAUD_WARNING_REFUNDS": "off"})
    buyer, purchase = paid(app)
    answer = send(app.url, warning_event(purchase.payment_intent_id))
    assert (answer.status_code, answer.json()["outcome"]) == (200, "efw_alert_only")
    assert sandbox_refunds(app) == 0
    assert account(buyer) == (110, 0)
    assert [(a["purchase_id"], a["outcome"]) for a in fraud_alerts(app)] == [
        (purchase.id, "efw_alert_only")
    ]


def test_a_warning_that_is_not_actionable_or_for_an_unknown_payment_is_alerted(
    start_app: AppStarter,
) -> None:
    app = start_app({})
    buyer, purchase = paid(app)
    calm = send(app.url, warning_event(purchase.payment_intent_id, actionable=False))
    assert (calm.status_code, calm.json()["outcome"]) == (200, "efw_not_actionable")
    unknown = warning_event("pi_not_one_of_ours")
    answer = send(app.url, unknown)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "efw_unknown_payment")
    assert app.store.event_processed(unknown["id"])
    assert sandbox_refunds(app) == 0
    assert account(buyer) == (110, 0)
    outcomes = {(a["purchase_id"], a["outcome"]) for a in fraud_alerts(app)}
    assert outcomes == {(purchase.id, "efw_not_actionable"), (None, "efw_unknown_payment")}


def test_the_sandboxs_fraud_card_is_refunded_and_its_tokens_taken_back(
    start_app: AppStarter,
) -> None:
    """Card 4000 0000 0000 5423 pays, then the sandbox sends an actionable warning."""
    app = start_app({})
    buyer = Buyer(app.url, f"efw-card-{uuid.uuid4().hex[:8]}@example.com")
    started = buyer.checkout("popular")
    buyer.pay_on_checkout_page(started["url"], "4000000000005423")
    wait_for(lambda: sandbox_refunds(app) == 1, "the warning's refund")
    wait_for(lambda: buyer.pending_deliveries() == 0, "the refund's events to be delivered")
    assert account(buyer) == (0, 0)
    assert [t["type"] for t in buyer.history()] == ["refund", "purchase"]
    outcomes = {(a["purchase_id"], a["outcome"]) for a in fraud_alerts(app)}
    assert outcomes == {(started["purchase_id"], "efw_refunded")}
