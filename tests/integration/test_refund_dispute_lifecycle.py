"""Refunds by refund id and disputes by dispute id, over HTTP on both stores.

Signed Stripe-shaped events in several orders, with duplicates: a refund that
fails gives its tokens back (and an operator can refund again), an older status
arriving late changes nothing; inquiries take nothing; a lost dispute won on
appeal is restored; two disputes on one charge each take their share; the
money events (funds_withdrawn, funds_reinstated) agree with the statuses.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.payments.clawbacks import REFUND_FAILED
from tests.integration.conftest import RunningApp
from tests.support.after_payment import dispute_by_id, refund_event
from tests.support.purchases import Buyer, buy, charge_event, event, send, session_object

TOKENS, PRICE = 110, 999

Step = tuple[str, int, str]  # (event type, amount, status)


def bought(app: RunningApp, name: str) -> tuple[Buyer, str]:
    buyer = Buyer(app.url, f"{name}-{uuid.uuid4().hex[:6]}@example.com")
    return buyer, str(buy(app.url, buyer)["payment_intent"])


def deliver(app: RunningApp, body: dict[str, Any], twice: bool = False) -> str:
    """Deliver ``body``; ``twice``: also the same object again under a new event id."""
    response = send(app.url, body)
    assert response.status_code == 200, response.text
    if twice:
        again = event(str(body["type"]), body["data"]["object"])
        assert send(app.url, again).status_code == 200
    return str(response.json()["outcome"])


def refund_steps(app: RunningApp, intent: str, refund_id: str, steps: list[Step]) -> None:
    for kind, amount, status in steps:
        if kind == "charge.refunded":
            deliver(app, charge_event(intent, PRICE, amount), twice=True)
        else:
            deliver(app, refund_event(kind, intent, refund_id, amount, status), twice=True)


FAILED_REFUND_ORDERS: dict[str, list[Step]] = {
    "failed-after-charge-refunded": [
        ("refund.created", PRICE, "pending"),
        ("charge.refunded", PRICE, ""),
        ("refund.updated", PRICE, "succeeded"),
        ("refund.failed", PRICE, "failed"),
    ],
    "failed-first": [
        ("refund.failed", PRICE, "failed"),
        ("charge.refunded", PRICE, ""),
        ("refund.created", PRICE, "pending"),
    ],
    "charge-refund-updated-then-late-succeeded": [
        ("charge.refunded", PRICE, ""),
        ("charge.refund.updated", PRICE, "canceled"),
        ("refund.updated", PRICE, "succeeded"),
        ("refund.updated", PRICE, "requires_action"),
    ],
}


def test_a_refund_that_fails_gives_the_tokens_back_in_any_order(running_app: RunningApp) -> None:
    for case, steps in FAILED_REFUND_ORDERS.items():
        buyer, intent = bought(running_app, case)
        refund_steps(running_app, intent, "re_" + uuid.uuid4().hex[:20], steps)
        assert buyer.balance() == TOKENS, case
        stored = running_app.store.find_purchase(payment_intent_id=intent)
        assert stored is not None
        assert (stored.refunded_amount, stored.refunded_tokens) == (0, 0), case
    failed = [a for a in running_app.store.list_alerts() if a.type == REFUND_FAILED]
    assert len(failed) == 2  # one per failed refund, whatever the duplicates; none for canceled


def test_refund_updated_before_charge_refunded_and_a_second_refund_after_a_failure(
    running_app: RunningApp,
) -> None:
    buyer, intent = bought(running_app, "partial")
    refund_steps(
        running_app,
        intent,
        "re_partial_1",
        [("refund.updated", 300, "succeeded"), ("charge.refunded", 300, "")],
    )
    assert buyer.balance() == TOKENS - TOKENS * 300 // PRICE
    refund_steps(running_app, intent, "re_partial_1", [("refund.failed", 300, "failed")])
    assert buyer.balance() == TOKENS
    # The operator refunds again: a new refund, counted in full by its own events.
    refund_steps(
        running_app,
        intent,
        "re_partial_2",
        [("charge.refunded", PRICE, ""), ("refund.created", PRICE, "pending")],
    )
    assert buyer.balance() == 0
    # charge.refunded's 999 counts only what the failed refund's 300 does not explain
    # (699) until the new refund's own event names it.
    kinds = [(t["type"], t["amount"]) for t in buyer.history()]
    assert kinds == [
        ("refund", -34),
        ("refund", -76),
        ("refund_reversal", 33),
        ("refund", -33),
        ("purchase", TOKENS),
    ]


def test_a_failed_refund_after_spending_reduces_the_debt_it_made(
    running_app: RunningApp,
) -> None:
    buyer, intent = bought(running_app, "debt")
    spent = buyer.post(
        "/api/tokens/spend", json={"amount": 100}, headers={"Idempotency-Key": "spend-1"}
    )
    assert spent.status_code == 200
    refund_steps(running_app, intent, "re_debt", [("refund.created", PRICE, "pending")])
    assert (buyer.balance(), running_app.store.get_account(buyer.user_id).debt) == (0, 100)
    refund_steps(running_app, intent, "re_debt", [("refund.failed", PRICE, "failed")])
    account = running_app.store.get_account(buyer.user_id)
    assert (account.balance, account.debt) == (10, 0)


def dispute_steps(app: RunningApp, intent: str, steps: list[tuple[str, str, int, str]]) -> None:
    for kind, dispute_id, amount, status in steps:
        deliver(app, dispute_by_id(kind, intent, dispute_id, amount, status), twice=True)


def test_an_inquiry_takes_nothing_opened_or_closed(running_app: RunningApp) -> None:
    buyer, intent = bought(running_app, "inquiry")
    opened = dispute_by_id(
        "charge.dispute.created", intent, "dp_inquiry", PRICE, "warning_needs_response"
    )
    assert deliver(running_app, opened) == "dispute_unchanged"
    assert buyer.balance() == TOKENS
    dispute_steps(
        running_app,
        intent,
        [
            ("charge.dispute.updated", "dp_inquiry", PRICE, "warning_under_review"),
            ("charge.dispute.closed", "dp_inquiry", PRICE, "warning_closed"),
        ],
    )
    assert buyer.balance() == TOKENS
    assert [t["type"] for t in buyer.history()] == ["purchase"]


LOST_THEN_WON_ON_APPEAL = [
    ("charge.dispute.created", "dp_appeal", PRICE, "needs_response"),
    ("charge.dispute.funds_withdrawn", "dp_appeal", PRICE, "needs_response"),
    ("charge.dispute.updated", "dp_appeal", PRICE, "under_review"),
    ("charge.dispute.closed", "dp_appeal", PRICE, "lost"),
    ("charge.dispute.updated", "dp_appeal", PRICE, "appeal_needs_response"),
    ("charge.dispute.updated", "dp_appeal", PRICE, "appeal_under_review"),
    ("charge.dispute.closed", "dp_appeal", PRICE, "won"),
    ("charge.dispute.funds_reinstated", "dp_appeal", PRICE, "won"),
]


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_a_dispute_lost_then_won_on_appeal_is_restored(running_app: RunningApp, order: str) -> None:
    buyer, intent = bought(running_app, "appeal")
    steps = LOST_THEN_WON_ON_APPEAL[:4]
    dispute_steps(running_app, intent, steps if order == "in-order" else steps[::-1])
    assert buyer.balance() == 0
    later = LOST_THEN_WON_ON_APPEAL[4:6]
    dispute_steps(running_app, intent, later if order == "in-order" else later[::-1])
    assert buyer.balance() == 0  # the money stays withdrawn during the appeal
    rest = LOST_THEN_WON_ON_APPEAL[6:]
    dispute_steps(running_app, intent, rest if order == "in-order" else rest[::-1])
    assert buyer.balance() == TOKENS
    dispute_steps(running_app, intent, LOST_THEN_WON_ON_APPEAL[:4])  # late, all of them
    assert buyer.balance() == TOKENS


def test_two_disputes_on_one_charge_and_the_money_events(running_app: RunningApp) -> None:
    buyer, intent = bought(running_app, "two")
    dispute_steps(
        running_app, intent, [("charge.dispute.created", "dp_one", 500, "needs_response")]
    )
    assert buyer.balance() == TOKENS - TOKENS * 500 // PRICE
    # The second one's money is withdrawn before its created event arrives.
    dispute_steps(
        running_app,
        intent,
        [("charge.dispute.funds_withdrawn", "dp_two", 499, "needs_response")],
    )
    assert buyer.balance() == 0
    # The first one's money comes back before its closed event: restored, for good.
    dispute_steps(
        running_app,
        intent,
        [
            ("charge.dispute.funds_reinstated", "dp_one", 500, "under_review"),
            ("charge.dispute.closed", "dp_one", 500, "lost"),
            ("charge.dispute.created", "dp_two", 499, "needs_response"),
        ],
    )
    assert buyer.balance() == TOKENS - TOKENS * 499 // PRICE
    stored = running_app.store.find_purchase(payment_intent_id=intent)
    assert stored is not None
    assert sorted(stored.disputes) == ["dp_one", "dp_two"]
    assert stored.dispute_amount == 499


def test_refund_and_dispute_events_before_the_payment_are_kept(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, f"early-{uuid.uuid4().hex[:6]}@example.com")
    started = buyer.checkout("popular")
    paid = session_object(started["session_id"], started["purchase_id"], buyer.user_id)
    intent = paid["payment_intent"]
    refund_steps(
        running_app,
        intent,
        "re_early",
        [("charge.refunded", 300, ""), ("refund.failed", 300, "failed")],
    )
    dispute_steps(
        running_app,
        intent,
        [
            ("charge.dispute.created", "dp_early", 699, "warning_needs_response"),
            ("charge.dispute.updated", "dp_early", 699, "needs_response"),
        ],
    )
    assert send(running_app.url, event("checkout.session.completed", paid)).ok
    assert buyer.balance() == TOKENS - TOKENS * 699 // PRICE
