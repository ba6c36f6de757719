"""Signed Stripe events against the app under gunicorn, on both stores.

Events are built from Stripe's own fixtures and signed like Stripe signs them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from services.payments.model import Purchase, PurchaseState
from tests.integration.conftest import RunningApp
from tests.support.purchases import Buyer, event, send, session_object, wait_for


def start_purchase(app: RunningApp, email: str = "buyer@example.com") -> tuple[Buyer, Purchase]:
    buyer = Buyer(app.url, email)
    started = buyer.checkout("popular")
    purchase = app.store.get_purchase(started["purchase_id"])
    assert purchase is not None and purchase.session_id == started["session_id"]
    return buyer, purchase


def paid_event(
    buyer: Buyer, purchase: Purchase, kind: str = "checkout.session.completed", **overrides: Any
) -> dict[str, Any]:
    obj = session_object(str(purchase.session_id), purchase.id, buyer.user_id, **overrides)
    return event(kind, obj)


def state_of(app: RunningApp, purchase: Purchase) -> PurchaseState:
    stored = app.store.get_purchase(purchase.id)
    assert stored is not None
    return stored.state


def test_the_same_event_20_times_at_once_credits_once(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    body = paid_event(buyer, purchase)
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: send(running_app.url, body).status_code, range(20)))
    assert statuses == [200] * 20
    assert buyer.balance() == 110
    assert [t["amount"] for t in buyer.history()] == [110]
    assert state_of(running_app, purchase) is PurchaseState.PAID


def test_bank_debit_waits_for_async_success_then_credits_once(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    unpaid = paid_event(buyer, purchase, payment_status="unpaid")
    assert send(running_app.url, unpaid).json()["outcome"] == "awaiting_payment"
    assert buyer.balance() == 0
    succeeded = paid_event(buyer, purchase, "checkout.session.async_payment_succeeded")
    assert send(running_app.url, succeeded).json()["outcome"] == "paid"
    # Late and repeated events change nothing.
    assert send(running_app.url, paid_event(buyer, purchase, payment_status="unpaid")).ok
    assert send(running_app.url, paid_event(buyer, purchase)).ok
    assert buyer.balance() == 110
    assert state_of(running_app, purchase) is PurchaseState.PAID


def test_events_out_of_order_reach_the_same_end_state(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    send(running_app.url, paid_event(buyer, purchase, "checkout.session.async_payment_succeeded"))
    send(running_app.url, paid_event(buyer, purchase, payment_status="unpaid"))
    send(
        running_app.url,
        paid_event(
            buyer, purchase, "checkout.session.async_payment_failed", payment_status="unpaid"
        ),
    )
    assert buyer.balance() == 110
    assert state_of(running_app, purchase) is PurchaseState.PAID


def test_async_failure_marks_the_purchase_failed(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    send(running_app.url, paid_event(buyer, purchase, payment_status="unpaid"))
    failed = paid_event(
        buyer, purchase, "checkout.session.async_payment_failed", payment_status="unpaid"
    )
    assert send(running_app.url, failed).json()["outcome"] == "failed"
    assert buyer.balance() == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [({"amount_total": 1}, "paid 1 usd"), ({"currency": "eur"}, "paid 999 eur")],
    ids=["amount", "currency"],
)
def test_a_mismatch_credits_nothing_and_goes_to_review(
    running_app: RunningApp, overrides: dict[str, Any], reason: str
) -> None:
    buyer, purchase = start_purchase(running_app)
    response = send(running_app.url, paid_event(buyer, purchase, **overrides))
    assert (response.status_code, response.json()["outcome"]) == (200, "needs_review")
    assert buyer.balance() == 0
    assert state_of(running_app, purchase) is PurchaseState.NEEDS_REVIEW
    alerts = [a for a in running_app.store.list_alerts() if a.purchase_id == purchase.id]
    assert [a.type for a in alerts] == ["purchase_needs_review"]
    assert reason in alerts[0].details["reason"]
    # The right amount later does not override the review.
    send(running_app.url, paid_event(buyer, purchase))
    assert buyer.balance() == 0


def test_bad_signatures_and_payloads_are_400_and_write_nothing(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    body = paid_event(buyer, purchase)
    now = int(time.time())
    attempts = [
        send(running_app.url, body, secret="whsec_wrong"),
        send(running_app.url, body, timestamp=now - 301),
        send(running_app.url, body, timestamp=now + 301),
        send(running_app.url, body, signature=""),
        send(running_app.url, b"{not json"),
        send(running_app.url, json.dumps({"id": "evt_1"}).encode()),
    ]
    assert [r.status_code for r in attempts] == [400] * 6
    assert [r.json()["code"] for r in attempts] == ["bad_signature"] * 4 + ["invalid_payload"] * 2
    assert buyer.balance() == 0
    assert state_of(running_app, purchase) is PurchaseState.PENDING
    assert not running_app.store.event_processed(body["id"])


def test_timestamps_inside_the_tolerance_are_accepted(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    now = int(time.time())
    assert send(running_app.url, paid_event(buyer, purchase), timestamp=now - 290).ok
    assert send(running_app.url, paid_event(buyer, purchase), timestamp=now + 290).ok
    assert buyer.balance() == 110


def test_ignored_events_and_oversized_bodies(running_app: RunningApp) -> None:
    charge = event("customer.created", {"id": "cus_1", "object": "customer"})
    response = send(running_app.url, charge)
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")
    huge = send(running_app.url, b"{" + b" " * (1024 * 1024 + 10) + b"}")
    assert huge.status_code == 413


def test_a_session_the_app_did_not_create_is_not_credited(running_app: RunningApp) -> None:
    """Only sessions from the Payment Links in PAYMENT_LINKS are adopted (test_payment_links)."""
    buyer = Buyer(running_app.url, "linked@example.com")
    obj = session_object("cs_test_paymentlink_0001", "ignored", buyer.user_id, metadata={})
    response = send(running_app.url, event("checkout.session.completed", obj))
    assert (response.status_code, response.json()["outcome"]) == (200, "no_purchase")
    assert buyer.balance() == 0
    assert running_app.store.find_purchase(session_id=obj["id"]) is None
    assert any(a.type == "session_not_adopted" for a in running_app.store.list_alerts())


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_storage_failure_is_5xx_and_the_redelivery_credits_once(running_app: RunningApp) -> None:
    buyer, purchase = start_purchase(running_app)
    body = paid_event(buyer, purchase)
    path = running_app.server.env["STORE_URL"].removeprefix("sqlite:///").split("?")[0]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the store is unavailable
    try:
        failed = send(running_app.url, body)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert failed.status_code == 503
    assert buyer.balance() == 0
    assert send(running_app.url, body).json()["outcome"] == "paid"
    assert send(running_app.url, body).json()["duplicate"] is True
    assert buyer.balance() == 110


def test_success_page_and_webhook_racing_credit_once(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "racer@example.com")
    started = buyer.checkout("pro")
    paid = buyer.pay_on_checkout_page(started["url"])
    assert paid.status_code == 303
    success = paid.headers["Location"].removeprefix(running_app.url)
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: buyer.get(success).status_code, range(8)))
    assert pages == [200] * 8
    wait_for(lambda: buyer.pending_deliveries() == 0, "the sandbox's webhook delivery")
    assert buyer.balance() == 250
    assert [t["amount"] for t in buyer.history()] == [250]
