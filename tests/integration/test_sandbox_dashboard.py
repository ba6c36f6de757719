"""The sandbox dashboard shows each payment's state and only the actions valid in it.

Checkout sessions and embedded payment intents are both listed; a bank debit that
failed can no longer be settled, even by posting the action directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.test_sandbox_purchase import pay
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer

ACTION = re.compile(r'action="/sandbox/sessions/(?P<id>[^/"]+)/(?P<action>[a-z_]+)"')


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def row_of(buyer: Buyer, payment_id: str) -> str:
    page = buyer.get("/sandbox/dashboard")
    assert page.status_code == 200
    rows = [row for row in page.text.split("<tr") if payment_id in row]
    assert len(rows) == 1, f"{payment_id} should have one row"
    return rows[0]


def actions(buyer: Buyer, payment_id: str) -> set[str]:
    return {m["action"] for m in ACTION.finditer(row_of(buyer, payment_id))}


def act(buyer: Buyer, payment_id: str, action: str) -> int:
    path = f"/sandbox/sessions/{payment_id}/{action}"
    answer = buyer.post(path, data={"csrf_token": buyer.csrf}, allow_redirects=False)
    return answer.status_code


def test_a_bank_debit_offers_settle_or_fail_then_refund_and_dispute(
    sandbox_app: AppServer,
) -> None:
    buyer = Buyer(sandbox_app.url, "dash-bank@example.com")
    started = buyer.checkout("starter")
    session = started["session_id"]
    assert actions(buyer, session) == {"expire"}
    assert "open" in row_of(buyer, session)
    pay(buyer, started["url"], method="bank_debit")
    assert actions(buyer, session) == {"settle", "fail"}
    assert act(buyer, session, "settle") == 303
    assert actions(buyer, session) == {"refund", "dispute"}
    assert act(buyer, session, "dispute") == 303
    # Stripe refuses to refund a disputed charge; the issuer decides the dispute
    assert actions(buyer, session) == {"win_dispute", "lose_dispute"}
    assert "dispute needs_response" in row_of(buyer, session)
    assert act(buyer, session, "win_dispute") == 303
    assert actions(buyer, session) == set()
    assert "dispute won" in row_of(buyer, session)
    assert act(buyer, session, "lose_dispute") == 409


def test_a_failed_bank_debit_offers_nothing_and_cannot_be_settled(
    sandbox_app: AppServer,
) -> None:
    buyer = Buyer(sandbox_app.url, "dash-fail@example.com")
    started = buyer.checkout("starter")
    pay(buyer, started["url"], method="bank_debit")
    assert act(buyer, started["session_id"], "fail") == 303
    wait_for(lambda: buyer.pending_deliveries() == 0, "deliveries to finish")
    assert actions(buyer, started["session_id"]) == set()
    assert "bank debit failed" in row_of(buyer, started["session_id"])
    assert act(buyer, started["session_id"], "settle") == 409
    wait_for(lambda: buyer.pending_deliveries() == 0, "deliveries to finish")
    assert buyer.balance() == 0


def test_embedded_payments_are_listed_with_their_actions(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "dash-intent@example.com")
    made = buyer.post("/api/tokens/create-payment-intent", json={"package": "starter"})
    assert made.status_code == 200, made.text
    intent = made.json()["payment_intent_id"]
    assert actions(buyer, intent) == set()
    assert "payment intent" in row_of(buyer, intent)
    confirm = buyer.post(
        f"/sandbox/payment-intents/{intent}/confirm",
        json={"card_number": "4242424242424242", "client_secret": made.json()["client_secret"]},
    )
    assert confirm.status_code == 200, confirm.text
    assert actions(buyer, intent) == {"refund", "dispute"}
    assert act(buyer, intent, "refund") == 303
    wait_for(lambda: buyer.balance() == 0, "the refund to take the tokens back")
    assert actions(buyer, intent) == {"dispute"}
    assert "refunded" in row_of(buyer, intent)


def test_an_unknown_action_is_not_found(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "dash-unknown@example.com")
    session = buyer.checkout("starter")["session_id"]
    assert act(buyer, session, "explode") == 404


def test_an_unknown_payment_is_not_found_not_an_outage(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "dash-bogus@example.com")
    for page in (
        buyer.get("/sandbox/checkout/cs_test_bogus"),
        buyer.post("/sandbox/checkout/cs_test_bogus", data={"csrf_token": buyer.csrf}),
    ):
        assert page.status_code == 404
        assert "Retry-After" not in page.headers
        assert "has no such payment" in page.text
    assert act(buyer, "cs_test_bogus", "expire") == 404


def card_payment(buyer: Buyer, card: str) -> str:
    started = buyer.checkout("starter")
    assert pay(buyer, started["url"], card_number=card)[0] == 303
    return str(started["session_id"])


def test_a_refund_on_the_failing_refund_card_can_be_failed_once(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "dash-refund-fails@example.com")
    session = card_payment(buyer, "4000 0000 0000 5126")
    assert actions(buyer, session) == {"refund", "dispute"}
    assert act(buyer, session, "refund") == 303
    assert actions(buyer, session) == {"fail_refund", "dispute"}
    assert act(buyer, session, "fail_refund") == 303
    assert "refund failed" in row_of(buyer, session)
    assert actions(buyer, session) == {"refund", "dispute"}  # the money is still ours
    assert act(buyer, session, "fail_refund") == 409


def test_the_dispute_and_inquiry_cards_open_them_after_the_payment(
    sandbox_app: AppServer,
) -> None:
    buyer = Buyer(sandbox_app.url, "dash-disputes@example.com")
    disputed = card_payment(buyer, "4000 0000 0000 0259")
    inquiry = card_payment(buyer, "4000 0000 0000 1976")
    assert actions(buyer, disputed) == {"win_dispute", "lose_dispute"}
    assert actions(buyer, inquiry) == {"close_inquiry"}
    assert "dispute warning_needs_response" in row_of(buyer, inquiry)
    assert act(buyer, disputed, "lose_dispute") == 303
    assert act(buyer, inquiry, "close_inquiry") == 303
    assert "dispute lost" in row_of(buyer, disputed)
    assert "dispute warning_closed" in row_of(buyer, inquiry)
    wait_for(lambda: buyer.pending_deliveries() == 0, "deliveries to finish")
