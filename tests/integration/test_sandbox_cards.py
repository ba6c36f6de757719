"""Stripe's after-payment test cards through the whole app: the sandbox's events, signed
and delivered over HTTP, reach the webhook's handlers and move the tokens as Stripe's
real events would (a failed refund gives them back, a dispute takes them, an inquiry
takes none, an early fraud warning refunds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_sandbox_dashboard import act, card_payment
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer

STARTER_TOKENS = 50


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def paid(buyer: Buyer, card: str) -> str:
    session = card_payment(buyer, card)
    wait_for(lambda: buyer.balance() == STARTER_TOKENS, "the credit")
    return session


def settled(buyer: Buyer) -> None:
    wait_for(lambda: buyer.pending_deliveries() == 0, "every delivery to be acknowledged")


def test_a_refund_that_fails_later_gives_the_tokens_back(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "cards-refund-fails@example.com")
    session = paid(buyer, "4000 0000 0000 5126")
    assert act(buyer, session, "refund") == 303
    wait_for(lambda: buyer.balance() == 0, "the refund's clawback")
    assert act(buyer, session, "fail_refund") == 303
    wait_for(lambda: buyer.balance() == STARTER_TOKENS, "the failed refund's tokens back")
    settled(buyer)
    assert buyer.balance() == STARTER_TOKENS


@pytest.mark.parametrize(("won", "balance"), [(True, STARTER_TOKENS), (False, 0)])
def test_a_dispute_takes_the_tokens_and_its_outcome_decides(
    sandbox_app: AppServer, won: bool, balance: int
) -> None:
    buyer = Buyer(sandbox_app.url, f"cards-dispute-{won}@example.com")
    session = paid(buyer, "4000 0000 0000 0259")
    wait_for(lambda: buyer.balance() == 0, "the dispute's clawback")
    assert act(buyer, session, "win_dispute" if won else "lose_dispute") == 303
    settled(buyer)
    wait_for(lambda: buyer.balance() == balance, "the dispute's outcome")
    assert buyer.get("/api/tokens/balance").json()["debt"] == 0  # taken once, not twice


def test_an_inquiry_takes_nothing(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "cards-inquiry@example.com")
    session = paid(buyer, "4000 0000 0000 1976")
    settled(buyer)
    assert buyer.balance() == STARTER_TOKENS
    assert act(buyer, session, "close_inquiry") == 303
    settled(buyer)
    assert buyer.balance() == STARTER_TOKENS


def test_an_early_fraud_warning_refunds_the_payment(sandbox_app: AppServer) -> None:
    buyer = Buyer(sandbox_app.url, "cards-efw@example.com")
    card_payment(buyer, "4000 0000 0000 5423")
    wait_for(
        lambda: buyer.pending_deliveries() == 0 and buyer.balance() == 0, "the warning's refund"
    )
    kinds = [t["type"] for t in buyer.history()]
    assert kinds[-1] == "purchase" and len(kinds) == 2, kinds  # the credit, then its clawback
