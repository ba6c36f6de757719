"""The operator's JSON API: grants and refunds, refused to everyone else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.purchases import Buyer, buy, wait_for
from tests.support.server import AppServer


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer({"OPERATOR_EMAILS": "ops@example.com"}).start()
    yield server
    server.stop()


def paid_buyer(app: AppServer) -> tuple[Buyer, str]:
    buyer = Buyer(app.url, "customer@example.com", username="customer")
    started = buyer.checkout("popular")
    buyer.pay_on_checkout_page(started["url"])
    wait_for(lambda: buyer.balance() == 110, "the purchase to be credited")
    return buyer, started["purchase_id"]


def test_only_operators_may_call_it(app: AppServer) -> None:
    buyer, purchase_id = paid_buyer(app)
    for path, body in (
        ("/admin/api/grants", {"user": "customer", "amount": 5, "reason": "x"}),
        ("/admin/api/refunds", {"purchase_id": purchase_id}),
    ):
        refused = buyer.post(path, json=body)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert buyer.balance() == 110


def test_an_operator_grants_and_refunds(app: AppServer) -> None:
    buyer, purchase_id = paid_buyer(app)
    ops = Buyer(app.url, "ops@example.com")
    granted = ops.post(
        "/admin/api/grants",
        json={"user": "@customer", "amount": 15, "reason": "sorry"},
        headers={"Idempotency-Key": "ticket-9"},
    )
    assert granted.json()["balance"] == 125
    ops.post(
        "/admin/api/grants",
        json={"user": "customer", "amount": 15, "reason": "sorry"},
        headers={"Idempotency-Key": "ticket-9"},
    )
    assert buyer.balance() == 125
    Buyer(app.url, "other@example.com", "other")
    elsewhere = ops.post(
        "/admin/api/grants",
        json={"user": "other", "amount": 15, "reason": "sorry"},
        headers={"Idempotency-Key": "ticket-9"},
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "idempotency_conflict")
    assert ops.post("/admin/api/grants", json={"user": "customer", "amount": 5}).status_code == 400
    spent = buyer.post("/api/tokens/spend", json={"amount": 120}, headers={"Idempotency-Key": "a"})
    assert spent.status_code == 200
    covered = ops.post("/admin/api/refunds", json={"purchase_id": purchase_id}).json()
    assert (covered["unspent_tokens"], covered["amount"]) == (5, 54)  # 54 cents = 5 tokens
    wait_for(lambda: buyer.balance() == 0, "the covered clawback")
    refused = ops.post("/admin/api/refunds", json={"purchase_id": purchase_id, "amount": 945})
    assert (refused.status_code, refused.json()["code"]) == (409, "refund_refused")
    forced = ops.post(
        "/admin/api/refunds", json={"purchase_id": purchase_id, "amount": 945, "force": True}
    )
    assert forced.status_code == 200, forced.text
    wait_for(lambda: buyer.get("/api/tokens/balance").json()["debt"] == 105, "the clawback")
    shown = ops.get(f"/admin/api/purchases/{purchase_id}").json()["purchase"]
    assert (shown["refunded_amount"], shown["refunded_tokens"]) == (999, 110)


def test_a_refund_the_provider_refuses_is_a_409_not_an_outage(app: AppServer) -> None:
    """Our record says paid; the provider knows no such payment (a refusal, not downtime)."""
    buyer = Buyer(app.url, "unknown-at-provider@example.com")
    bought = buy(app.url, buyer, "starter")  # the signed event alone: the sandbox took no money
    ops = Buyer(app.url, "ops@example.com")
    refused = ops.post("/admin/api/refunds", json={"purchase_id": bought["purchase_id"]})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "refund_refused"
    assert "payment provider refused the refund" in refused.json()["error"]
    assert buyer.balance() == 50
