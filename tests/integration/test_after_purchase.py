"""After the purchase, over HTTP on both stores: spending, tips, gifts, refunds, disputes, debt."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.integration.conftest import RunningApp
from tests.support.purchases import (
    Buyer,
    buy,
    charge_event,
    dispute_event,
    event,
    send,
    session_object,
)


def spend(buyer: Buyer, amount: Any, key: str | None = None, **extra: Any) -> requests.Response:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return buyer.post(
        "/api/tokens/spend", json={"amount": amount, "reason": "render", **extra}, headers=headers
    )


def tip(sender: Buyer, recipient: str, amount: Any, key: str | None = None) -> requests.Response:
    return sender.post(
        "/api/tokens/transfer",
        json={"recipient": recipient, "amount": amount, "note": "thanks"},
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


def account(buyer: Buyer) -> dict[str, Any]:
    body: dict[str, Any] = buyer.get("/api/tokens/balance").json()
    return body


def test_refund_after_spend_becomes_debt_repaid_by_the_next_purchase(
    running_app: RunningApp,
) -> None:
    buyer = Buyer(running_app.url, "debtor@example.com")
    bought = buy(running_app.url, buyer)
    assert spend(buyer, 100).status_code == 200
    refund = send(running_app.url, charge_event(bought["payment_intent"], 999, 999))
    assert refund.json()["outcome"] == "refund_clawed_back"
    assert account(buyer) == {
        "success": True,
        "balance": 0,
        "debt": 100,
        "status": "debt",
        "available": 0,
        "held": 0,
    }
    refused = spend(buyer, 1)
    assert (refused.status_code, refused.json()["code"]) == (403, "account_in_debt")
    buy(running_app.url, buyer)
    assert account(buyer) == {
        "success": True,
        "balance": 10,
        "debt": 0,
        "status": "active",
        "available": 10,
        "held": 0,
    }
    kinds = [(t["type"], t["amount"]) for t in buyer.history()]
    assert kinds == [
        ("debt_repayment", -100),
        ("purchase", 110),
        ("refund", -10),
        ("spend", -100),
        ("purchase", 110),
    ]
    alerts = [a.type for a in running_app.store.list_alerts() if a.user_id == buyer.user_id]
    assert alerts == ["refund_clawback"]


@pytest.mark.parametrize(
    "order",
    [[300, 999], [999, 300], [300, 300, 999, 999]],
    ids=["in-order", "out-of-order", "repeated"],
)
def test_partial_refunds_reach_the_same_end_state(
    running_app: RunningApp, order: list[int]
) -> None:
    buyer = Buyer(running_app.url, f"partial-{uuid.uuid4().hex[:6]}@example.com")
    bought = buy(running_app.url, buyer)
    for refunded in order:
        assert send(running_app.url, charge_event(bought["payment_intent"], 999, refunded)).ok
    assert account(buyer)["balance"] == 0
    assert sum(t["amount"] for t in buyer.history() if t["type"] == "refund") == -110


def test_a_partial_refund_takes_back_its_share(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "share@example.com")
    bought = buy(running_app.url, buyer)
    send(running_app.url, charge_event(bought["payment_intent"], 999, 300))
    assert account(buyer)["balance"] == 110 - 110 * 300 // 999


@pytest.mark.parametrize(("status", "balance"), [("won", 110), ("lost", 0)])
def test_a_dispute_takes_tokens_back_and_a_won_one_restores_them(
    running_app: RunningApp, status: str, balance: int
) -> None:
    buyer = Buyer(running_app.url, f"dispute-{status}@example.com")
    bought = buy(running_app.url, buyer)
    opened = send(
        running_app.url,
        dispute_event("charge.dispute.created", bought["payment_intent"], 999, "needs_response"),
    )
    assert opened.json()["outcome"] == "dispute_clawed_back"
    assert account(buyer)["balance"] == 0
    closed = send(
        running_app.url,
        dispute_event("charge.dispute.closed", bought["payment_intent"], 999, status),
    )
    assert closed.json()["outcome"] == f"dispute_{status}"
    assert account(buyer)["balance"] == balance


def test_spending_rules_and_replays(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "spender@example.com")
    buy(running_app.url, buyer)
    first = spend(buyer, 30, key="job-1")
    again = spend(buyer, 30, key="job-1")
    assert first.json() == again.json()
    assert first.json()["balance"] == 80
    conflict = spend(buyer, 31, key="job-1")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    short = spend(buyer, 81)
    assert (short.status_code, short.json()["code"]) == (402, "insufficient_tokens")
    assert account(buyer)["balance"] == 80


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        ({"amount": 0}, None, "invalid_amount"),
        ({"amount": -5}, None, "invalid_amount"),
        ({"amount": 1.5}, None, "invalid_amount"),
        ({"amount": "10"}, None, "invalid_amount"),
        ({"amount": 10**13}, None, "invalid_amount"),
        ({}, None, "invalid_amount"),
        ({"amount": 5}, {}, "invalid_idempotency_key"),
        (b"{oops", None, "invalid_payload"),
    ],
    ids=["zero", "negative", "float", "string", "huge", "missing", "no-key", "bad-json"],
)
def test_bad_spend_requests_are_4xx_and_change_nothing(
    running_app: RunningApp, body: Any, headers: dict[str, str] | None, code: str
) -> None:
    buyer = Buyer(running_app.url, "badinput@example.com")
    buy(running_app.url, buyer)
    sent_headers = {"Idempotency-Key": uuid.uuid4().hex} if headers is None else headers
    if isinstance(body, bytes):
        sent_headers["Content-Type"] = "application/json"
        response = buyer.post("/api/tokens/spend", data=body, headers=sent_headers)
    else:
        response = buyer.post("/api/tokens/spend", json=body, headers=sent_headers)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert account(buyer)["balance"] == 110
    assert len(buyer.history()) == 1


def test_tips_by_username_and_their_refusals(running_app: RunningApp) -> None:
    ann = Buyer(running_app.url, "ann@example.com", username="Ann")
    bob = Buyer(running_app.url, "bob@example.com", username="bob")
    buy(running_app.url, bob)
    sent = tip(bob, "@ANN", 25)
    assert sent.status_code == 200, sent.text
    assert sent.json()["recipient"]["id"] == ann.user_id
    assert account(ann)["balance"] == 25
    assert ann.history()[0]["description"] == "Tip from @bob"
    assert bob.history()[0]["description"] == "Tip to @Ann"
    cases = [
        (tip(bob, "nobody", 1), 404, "account_not_found"),
        (tip(bob, "bob", 1), 400, "self_transfer"),
        (tip(bob, "ann", 1000), 402, "insufficient_tokens"),
        (tip(bob, "ann", -1), 400, "invalid_amount"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code)
    assert account(bob)["balance"] == 85


def test_a_gift_credits_the_recipient_and_both_histories_show_it(running_app: RunningApp) -> None:
    giver = Buyer(running_app.url, "giver@example.com", username="giver")
    friend = Buyer(running_app.url, "friend@example.com", username="friend")
    started = giver.post(
        "/api/tokens/create-checkout-session",
        json={"package": "popular", "gift_recipient": "friend"},
    ).json()
    from tests.support.purchases import event, session_object

    obj = session_object(started["session_id"], started["purchase_id"], friend.user_id)
    assert (
        send(running_app.url, event("checkout.session.completed", obj)).json()["outcome"] == "paid"
    )
    assert account(friend)["balance"] == 110
    assert account(giver)["balance"] == 0
    assert friend.history()[0]["description"] == "Gift from @giver: Popular pack"
    assert giver.history()[0]["description"] == "Gift to @friend: Popular pack"


def test_three_spends_of_400_against_1000_exactly_two_succeed(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "racer400@example.com")
    for package in ("creator", "pro", "starter"):
        buy(running_app.url, buyer, package)
    assert account(buyer)["balance"] == 1000
    with ThreadPoolExecutor(3) as pool:
        codes = sorted(pool.map(lambda _: spend(buyer, 400).status_code, range(3)))
    assert codes == [200, 200, 402]
    assert account(buyer)["balance"] == 200


def test_fifty_concurrent_tips_to_one_recipient_are_all_accounted_for(
    running_app: RunningApp,
) -> None:
    star = Buyer(running_app.url, "star@example.com", username="star")
    fans = [Buyer(running_app.url, f"fan{i}@example.com") for i in range(10)]
    for fan in fans:
        buy(running_app.url, fan, "starter")
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: tip(fans[i % 10], "star", 3).status_code, range(50)))
    assert codes == [200] * 50
    assert account(star)["balance"] == 150
    assert sum(account(fan)["balance"] for fan in fans) == 10 * 50 - 150


def test_holds_over_http(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "holder@example.com")
    buy(running_app.url, buyer)
    created = buyer.post(
        "/api/tokens/holds",
        json={"amount": 70, "reason": "video"},
        headers={"Idempotency-Key": "job-1"},
    ).json()
    assert (created["amount"], created["available"]) == (70, 40)
    assert account(buyer)["available"] == 40
    assert (account(buyer)["balance"], account(buyer)["held"]) == (110, 70)
    short = spend(buyer, 41)
    assert (short.status_code, short.json()["code"]) == (402, "insufficient_tokens")
    captured = buyer.post(f"/api/tokens/holds/{created['hold_id']}/capture", json={"amount": 50})
    assert captured.json()["balance"] == 60
    again = buyer.post(f"/api/tokens/holds/{created['hold_id']}/release")
    assert (again.status_code, again.json()["code"]) == (404, "hold_not_found")
    assert account(buyer)["available"] == 60
    second = buyer.post(
        "/api/tokens/holds", json={"amount": 10}, headers={"Idempotency-Key": "job-2"}
    ).json()
    released = buyer.post(f"/api/tokens/holds/{second['hold_id']}/release")
    assert released.status_code == 200
    assert account(buyer)["available"] == 60
    descriptions = [t["description"] for t in buyer.history()[:4]]
    assert descriptions == [
        "Reserved tokens released",
        "Tokens reserved",
        "captured hold",
        "Tokens reserved: video",
    ]


DISPUTE_ORDERS = {
    "refund-then-dispute": [("refund", 500), ("created", 499), ("closed-lost", 499)],
    "dispute-then-refund": [("created", 499), ("refund", 500), ("closed-lost", 499)],
    "refund-during-won-dispute": [("created", 999), ("refund", 500), ("closed-won", 999)],
    "closed-before-created": [("closed-won", 999), ("created", 999)],
    "full-refund-after-won-dispute": [
        ("refund", 375),
        ("created", 999),
        ("closed-won", 999),
        ("refund", 999),
    ],
}
EXPECTED_BALANCE = {
    "refund-then-dispute": 0,
    "dispute-then-refund": 0,
    "refund-during-won-dispute": 55,
    "closed-before-created": 110,
    "full-refund-after-won-dispute": 0,
}


def send_steps(base_url: str, intent: str, case: str) -> None:
    for step, amount in DISPUTE_ORDERS[case]:
        if step == "refund":
            body = charge_event(intent, 999, amount)
        elif step == "created":
            body = dispute_event("charge.dispute.created", intent, amount, "needs_response")
        else:
            status = step.removeprefix("closed-")
            body = dispute_event("charge.dispute.closed", intent, amount, status)
        assert send(base_url, body).ok


@pytest.mark.parametrize("case", list(DISPUTE_ORDERS))
def test_refunds_and_disputes_in_any_order(running_app: RunningApp, case: str) -> None:
    buyer = Buyer(running_app.url, f"{case}@example.com")
    intent = buy(running_app.url, buyer)["payment_intent"]
    send_steps(running_app.url, intent, case)
    assert account(buyer)["balance"] == EXPECTED_BALANCE[case]


@pytest.mark.parametrize("case", list(DISPUTE_ORDERS))
def test_refunds_and_disputes_that_overtake_the_payment_are_kept(
    running_app: RunningApp, case: str
) -> None:
    """Stripe does not promise order: the same end state when they come before it."""
    buyer = Buyer(running_app.url, f"early-{case}@example.com")
    started = buyer.checkout("popular")
    paid = session_object(started["session_id"], started["purchase_id"], buyer.user_id)
    send_steps(running_app.url, paid["payment_intent"], case)
    assert account(buyer)["balance"] == 0  # nothing to take back from yet
    assert send(running_app.url, event("checkout.session.completed", paid)).ok
    assert account(buyer)["balance"] == EXPECTED_BALANCE[case]
