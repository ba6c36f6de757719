"""Clawbacks follow the tokens, over HTTP on both stores, with signed Stripe-shaped events.

A buyer who tipped away what a dispute or refund takes back: the recipients
lose what they still hold (most recent first, onwards to whom they tipped),
and only the rest is the buyer's debt. A gift's shortfall is the payer's debt.
A redelivered event takes nothing more; tokens given back go to the buyer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from services.ledger.model import utc_now
from services.reconciliation import reconcile
from tests.integration.conftest import RunningApp
from tests.support.after_payment import dispute_by_id
from tests.support.purchases import (
    Buyer,
    buy,
    charge_event,
    event,
    send,
    session_object,
    wait_for,
)

CREATOR_TOKENS, CREATOR_PRICE = 700, 4999


def person(app: RunningApp, name: str) -> Buyer:
    tag = uuid.uuid4().hex[:6]
    return Buyer(app.url, f"{name}-{tag}@example.com", username=f"{name}{tag}")


def tip(sender: Buyer, recipient: Buyer, amount: int) -> None:
    response = sender.post(
        "/api/tokens/transfer",
        json={"recipient": recipient.user_id, "amount": amount, "note": "thanks"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text


def spend(user: Buyer, amount: int) -> None:
    response = user.post(
        "/api/tokens/spend",
        json={"amount": amount, "reason": "render"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text


def held(user: Buyer) -> tuple[int, int]:
    body: dict[str, Any] = user.get("/api/tokens/balance").json()
    return int(body["balance"]), int(body["debt"])


def dispute(
    app: RunningApp, intent: str, status: str = "needs_response", dispute_id: str = ""
) -> str:
    """A dispute of the whole creator payment, delivered twice (Stripe retries)."""
    kind = "charge.dispute.closed" if status in ("won", "lost") else "charge.dispute.created"
    body = dispute_by_id(kind, intent, "dp_" + intent[3:], CREATOR_PRICE, status)
    first = send(app.url, body)
    assert first.status_code == 200, first.text
    again = send(app.url, event(str(body["type"]), body["data"]["object"]))
    assert again.status_code == 200, again.text
    return str(first.json()["outcome"])


def hop_entries(user: Buyer) -> list[dict[str, Any]]:
    return [e for e in user.history() if e["type"] == "clawback_hop"]


def test_the_issues_reproduction_the_recipient_loses_what_it_holds(running_app: RunningApp) -> None:
    buyer, second = person(running_app, "buyer"), person(running_app, "second")
    intent = str(buy(running_app.url, buyer, "creator")["payment_intent"])
    tip(buyer, second, CREATOR_TOKENS)
    spend(second, 200)  # spent before the dispute: only 500 still held
    assert dispute(running_app, intent) == "dispute_clawed_back"
    assert held(second) == (0, 0)  # never negative, never in debt
    assert held(buyer) == (0, 200)  # only what nobody holds
    assert [e["amount"] for e in hop_entries(second)] == [-500]
    alerts = [a for a in running_app.store.list_alerts() if a.type == "dispute_clawback"]
    mine = [a for a in alerts if a.user_id == buyer.user_id]
    assert len(mine) == 1
    assert mine[0].details["chain"] == f"{second.user_id}: 500"
    # Redelivered under new event ids, and the dispute updated: nothing more is taken.
    assert dispute(running_app, intent) == "dispute_unchanged"
    assert dispute(running_app, intent, "under_review") == "dispute_unchanged"
    assert (held(buyer), held(second)) == ((0, 200), (0, 0))
    assert len(hop_entries(second)) == 1


def test_most_recent_first_and_a_third_hop(running_app: RunningApp) -> None:
    buyer, first, second, third = (
        person(running_app, name) for name in ("buyer", "first", "second", "third")
    )
    intent = str(buy(running_app.url, buyer, "creator")["payment_intent"])
    tip(buyer, first, 300)
    tip(buyer, second, 400)  # the most recent: followed first
    tip(second, third, 250)  # second holds 150, third the 250
    spend(third, 50)
    assert dispute(running_app, intent) == "dispute_clawed_back"
    # 700 owed: second 150, third 200 (of 250 tipped on), first 300; 50 stays debt.
    assert held(second) == (0, 0)
    assert held(third) == (0, 0)
    assert held(first) == (0, 0)
    assert held(buyer) == (0, 50)
    alert = next(
        a
        for a in running_app.store.list_alerts()
        if a.type == "dispute_clawback" and a.user_id == buyer.user_id
    )
    assert alert.details["chain"] == (
        f"{second.user_id}: 150, {third.user_id}: 200, {first.user_id}: 300"
    )
    # Won: the tokens go back to the buyer, repaying the debt first.
    assert dispute(running_app, intent, "won") == "dispute_won"
    assert held(buyer) == (CREATOR_TOKENS - 50, 0)
    assert (held(first), held(second), held(third)) == ((0, 0), (0, 0), (0, 0))
    # Reconciliation counts the hops with the clawbacks: each takes as much off the debt.
    report = reconcile(running_app.store, None, utc_now())
    assert report.differences == [], report.differences


def test_a_gifts_shortfall_is_the_payers_debt_not_the_recipients(running_app: RunningApp) -> None:
    giver = person(running_app, "giver")
    name = f"friend{uuid.uuid4().hex[:6]}"
    friend = Buyer(running_app.url, f"{name}@example.com", username=name)
    started = giver.post(
        "/api/tokens/create-checkout-session",
        json={"package": "popular", "gift_recipient": name},
    ).json()
    obj = session_object(started["session_id"], started["purchase_id"], friend.user_id)
    paid = send(running_app.url, event("checkout.session.completed", obj))
    assert paid.json()["outcome"] == "paid"
    spend(friend, 30)
    refund = charge_event(str(obj["payment_intent"]), 999, 999)
    assert send(running_app.url, refund).json()["outcome"] == "refund_clawed_back"
    assert send(running_app.url, event("charge.refunded", refund["data"]["object"])).ok
    assert held(friend) == (0, 0)  # what it still held, and no debt: not frozen
    assert held(giver) == (0, 30)
    assert friend.get("/api/tokens/balance").json()["status"] == "active"


def test_transfers_outside_the_window_are_not_followed(start_app: Any) -> None:
    app = start_app({"CLAWBACK_WINDOW_S": "1"})
    buyer, second = person(app, "buyer"), person(app, "second")
    intent = str(buy(app.url, buyer, "creator")["payment_intent"])
    tip(buyer, second, CREATOR_TOKENS)
    tipped = time.monotonic()
    wait_for(lambda: time.monotonic() - tipped > 1.5, "the window to pass")
    assert dispute(app, intent) == "dispute_clawed_back"
    assert held(second) == (CREATOR_TOKENS, 0)
    assert held(buyer) == (0, CREATOR_TOKENS)
