"""Stripe's test cards in the sandbox: 3D Secure challenges, and what happens after a
payment (a refund that fails later, a dispute, an inquiry, an early fraud warning),
with the events Stripe sends, shaped like the pinned API version's fixtures."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import stripe

from services.payments.port import PaymentsError
from services.payments.sandbox import PaymentDeclined, SandboxPayments
from tests.support.stripe_fixtures import fixture
from tests.unit.conftest import Clock
from tests.unit.test_sandbox_gateway import embedded, start

AUTHENTICATION_CARDS = ["4000 0025 0000 3155", "4000 0027 6000 3184", "4000 0000 0000 3220"]


def events(gateway: SandboxPayments, *types: str) -> list[dict[str, Any]]:
    """Events generated so far, oldest first."""
    return list(reversed(list(gateway.list_events(created_gte=0, types=list(types) or None))))


def types_of(gateway: SandboxPayments) -> list[str]:
    return [e["type"] for e in events(gateway)]


def token_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


def paid_with(gateway: SandboxPayments, card: str, purchase_id: str = "pur_card") -> str:
    """A checkout session paid with ``card``; its id."""
    session_id = start(gateway, purchase_id)
    gateway.pay_with_card(session_id, card)
    return session_id


# -- 3D Secure ---------------------------------------------------------------------


@pytest.mark.parametrize("card", AUTHENTICATION_CARDS)
def test_an_embedded_payment_authenticates_then_succeeds(
    gateway: SandboxPayments, card: str
) -> None:
    intent_id, secret = embedded(gateway)
    waiting = gateway.confirm_payment_intent(intent_id, card, secret)
    assert waiting["status"] == "requires_action"
    redirect = waiting["next_action"]["redirect_to_url"]
    assert waiting["next_action"]["type"] == "redirect_to_url"
    assert redirect["url"].startswith(f"{gateway.base_url}/sandbox/3ds/{intent_id}?token=")
    assert redirect["return_url"] == f"{gateway.base_url}/token-purchase-success"
    assert types_of(gateway) == ["payment_intent.requires_action"]
    assert events(gateway)[0]["data"]["object"]["next_action"] == waiting["next_action"]

    with pytest.raises(PaymentsError, match="No such authentication"):
        gateway.authenticate(intent_id, "guessed", completed=True)
    back = gateway.authenticate(intent_id, token_of(redirect["url"]), completed=True)
    query = parse_qs(urlparse(back).query)
    assert back.startswith(redirect["return_url"] + "?")
    assert query["payment_intent"] == [intent_id]
    assert query["payment_intent_client_secret"] == [secret]
    assert query["redirect_status"] == ["succeeded"]
    assert types_of(gateway) == ["payment_intent.requires_action", "payment_intent.succeeded"]
    intent = gateway.retrieve_payment_intent(intent_id)
    assert (intent["status"], intent["next_action"]) == ("succeeded", None)


def test_a_failed_challenge_leaves_the_intent_for_another_card(gateway: SandboxPayments) -> None:
    intent_id, secret = embedded(gateway)
    waiting = gateway.confirm_payment_intent(intent_id, AUTHENTICATION_CARDS[1], secret)
    token = token_of(waiting["next_action"]["redirect_to_url"]["url"])
    back = gateway.authenticate(intent_id, token, completed=False)
    assert parse_qs(urlparse(back).query)["redirect_status"] == ["failed"]
    [failed] = events(gateway, "payment_intent.payment_failed")
    obj = failed["data"]["object"]
    assert obj["status"] == "requires_payment_method"
    assert obj["next_action"] is None
    assert obj["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert obj["last_payment_error"]["type"] == "card_error"
    assert secret not in str(failed)
    # the same challenge cannot be completed afterwards; another card pays the intent
    gateway.authenticate(intent_id, token, completed=True)
    assert gateway.retrieve_payment_intent(intent_id)["status"] == "requires_payment_method"
    assert gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)["status"] == (
        "succeeded"
    )
    assert types_of(gateway) == [
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


@pytest.mark.parametrize("card", AUTHENTICATION_CARDS)
def test_a_checkout_session_authenticates_then_completes(
    gateway: SandboxPayments, card: str
) -> None:
    session_id = start(gateway, "pur_3ds")
    waiting = gateway.pay_with_card(session_id, card)
    assert (waiting["status"], waiting["payment_status"]) == ("open", "unpaid")
    url = waiting["next_action"]["redirect_to_url"]["url"]
    assert url.startswith(f"{gateway.base_url}/sandbox/3ds/{session_id}?token=")
    [action] = events(gateway)
    assert action["type"] == "payment_intent.requires_action"
    assert action["data"]["object"]["id"] == waiting["payment_intent"]
    assert action["data"]["object"]["status"] == "requires_action"

    back = gateway.authenticate(session_id, token_of(url), completed=True)
    assert back == waiting["success_url"]
    completed = events(gateway, "checkout.session.completed")[0]["data"]["object"]
    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    assert "challenge" not in completed
    assert "next_action" not in completed


def test_a_failed_checkout_challenge_keeps_the_session_open(gateway: SandboxPayments) -> None:
    session_id = start(gateway, "pur_3ds_fail")
    waiting = gateway.pay_with_card(session_id, AUTHENTICATION_CARDS[0])
    token = token_of(waiting["next_action"]["redirect_to_url"]["url"])
    assert gateway.authenticate(session_id, token, completed=False) == ""
    session = gateway.retrieve_session(session_id)
    assert (session["status"], session["payment_status"]) == ("open", "unpaid")
    [failed] = events(gateway, "payment_intent.payment_failed")
    error = failed["data"]["object"]["last_payment_error"]
    assert error["code"] == "payment_intent_authentication_failure"
    gateway.pay_with_card(session_id, "4242 4242 4242 4242")
    assert gateway.retrieve_session(session_id)["payment_status"] == "paid"


def test_a_session_that_expired_during_its_challenge_cannot_be_paid_by_it(
    gateway: SandboxPayments,
) -> None:
    session_id = start(gateway, "pur_3ds_expired")
    waiting = gateway.pay_with_card(session_id, AUTHENTICATION_CARDS[2])
    gateway.expire(session_id)
    token = token_of(waiting["next_action"]["redirect_to_url"]["url"])
    assert gateway.authenticate(session_id, token, completed=True) == ""
    session = gateway.retrieve_session(session_id)
    assert (session["status"], session["payment_status"]) == ("expired", "unpaid")
    assert types_of(gateway) == ["payment_intent.requires_action", "checkout.session.expired"]


# -- after the payment -------------------------------------------------------------


def test_a_refund_on_card_5126_succeeds_then_fails(gateway: SandboxPayments) -> None:
    session_id = paid_with(gateway, "4000 0000 0000 5126")
    intent_id = gateway.retrieve_session(session_id)["payment_intent"]
    refund = gateway.create_refund(
        payment_intent=intent_id, amount=None, idempotency_key="r-1", metadata={}
    )
    assert refund["status"] == "succeeded"  # at first, as Stripe's docs say
    assert types_of(gateway)[-2:] == ["charge.refunded", "refund.created"]

    gateway.fail_refund(session_id)
    assert types_of(gateway)[-3:] == ["refund.updated", "refund.failed", "charge.refund.updated"]
    updated, failed, charge_refund = events(gateway)[-3:]
    for event in (updated, failed, charge_refund):
        obj = event["data"]["object"]
        assert (obj["id"], obj["status"]) == (refund["id"], "failed")
        assert obj["failure_reason"] == "expired_or_canceled_card"
    assert updated["data"]["previous_attributes"]["status"] == "succeeded"
    assert charge_refund["data"]["previous_attributes"]["status"] == "succeeded"
    assert gateway.payment(session_id)["amount_refunded"] == 0

    # the money never left, so it can be refunded again; a second failure needs a new refund
    again = gateway.create_refund(
        payment_intent=intent_id, amount=None, idempotency_key="r-2", metadata={}
    )
    assert again["amount"] == 999
    gateway.fail_refund(session_id)
    gateway.fail_refund(session_id)  # nothing left to fail: no event
    assert len(events(gateway, "refund.failed")) == 2


def test_refunds_on_other_cards_never_fail(gateway: SandboxPayments) -> None:
    session_id = paid_with(gateway, "4242 4242 4242 4242")
    gateway.refund(session_id)
    gateway.fail_refund(session_id)
    assert events(gateway, "refund.failed") == []
    assert gateway.payment(session_id)["amount_refunded"] == 999


@pytest.mark.parametrize("won", [True, False])
def test_card_0259_is_disputed_after_the_payment_and_the_dispute_closes(
    gateway: SandboxPayments, won: bool
) -> None:
    session_id = paid_with(gateway, "4000 0000 0000 0259")
    assert types_of(gateway) == [
        "checkout.session.completed",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    dispute = events(gateway)[1]["data"]["object"]
    assert (dispute["status"], dispute["reason"]) == ("needs_response", "fraudulent")
    assert dispute["payment_intent"] == gateway.retrieve_session(session_id)["payment_intent"]

    gateway.close_dispute(session_id, won=won)
    closing = events(gateway)[3:]
    assert [e["type"] for e in closing][:2] == ["charge.dispute.updated", "charge.dispute.closed"]
    assert closing[0]["data"]["object"]["status"] == "under_review"
    assert closing[0]["data"]["previous_attributes"] == {"status": "needs_response"}
    assert closing[1]["data"]["object"]["status"] == ("won" if won else "lost")
    assert closing[1]["data"]["object"]["id"] == dispute["id"]
    reinstated = [e["type"] for e in closing[2:]]
    assert reinstated == (["charge.dispute.funds_reinstated"] if won else [])
    gateway.close_dispute(session_id, won=not won)  # closed: nothing more happens
    assert len(events(gateway)) == 3 + len(closing)


def test_card_1976_opens_an_inquiry_that_takes_no_money(gateway: SandboxPayments) -> None:
    session_id = paid_with(gateway, "4000000000001976")
    assert types_of(gateway) == ["checkout.session.completed", "charge.dispute.created"]
    inquiry = events(gateway)[1]["data"]["object"]
    assert inquiry["status"] == "warning_needs_response"
    assert inquiry["payment_method_details"]["card"]["case_type"] == "inquiry"
    gateway.close_dispute(session_id, won=False)
    assert [e["data"]["object"]["status"] for e in events(gateway)[2:]] == [
        "warning_under_review",
        "warning_closed",
    ]


def test_card_5423_brings_an_actionable_early_fraud_warning(gateway: SandboxPayments) -> None:
    intent_id, secret = embedded(gateway)
    gateway.confirm_payment_intent(intent_id, "4000 0000 0000 5423", secret)
    assert types_of(gateway) == ["payment_intent.succeeded", "radar.early_fraud_warning.created"]
    warning = events(gateway)[1]["data"]["object"]
    assert warning["actionable"] is True
    assert warning["payment_intent"] == intent_id
    assert warning["charge"] == gateway.retrieve_payment_intent(intent_id)["latest_charge"]


def test_follow_up_events_are_delivered_after_the_payments_own(
    gateway: SandboxPayments, clock: Clock
) -> None:
    paid_with(gateway, "4000 0000 0000 0259")
    with gateway.db.connect() as conn:
        dues = conn.execute("SELECT due FROM outbox ORDER BY rowid").fetchall()
    assert [due for (due,) in dues] == [clock.now, clock.now + 1, clock.now + 1]


# -- shapes --------------------------------------------------------------------------


def test_no_event_carries_line_items_but_the_retrieved_session_does(
    gateway: SandboxPayments,
) -> None:
    session_id = paid_with(gateway, "4000 0000 0000 0259")
    gateway.expire(start(gateway, "pur_expired"))
    gateway.refund(session_id)
    gateway.close_dispute(session_id, won=True)
    for event in events(gateway):
        assert "line_items" not in event["data"]["object"], event["type"]
        assert "dispute" not in event["data"]["object"] or event["type"].startswith("charge.d")
    assert gateway.retrieve_session(session_id)["line_items"]["data"][0]["quantity"] == 1


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("refund.failed", "refund"),
        ("charge.dispute.closed", "dispute"),
        ("radar.early_fraud_warning.created", "radar.early_fraud_warning"),
    ],
)
def test_objects_have_every_field_of_stripes_fixture(
    gateway: SandboxPayments, event_type: str, resource: str
) -> None:
    refunded = paid_with(gateway, "4000000000005126", "pur_refund")
    gateway.refund(refunded)
    gateway.fail_refund(refunded)
    gateway.close_dispute(paid_with(gateway, "4000000000000259", "pur_dispute"), won=False)
    paid_with(gateway, "4000000000005423", "pur_warning")
    [event] = events(gateway, event_type)
    obj = event["data"]["object"]
    expected = fixture(resource)
    assert set(expected) <= set(obj), set(expected) - set(obj)
    assert obj["object"] == expected["object"]
    event_shape = fixture("event")
    assert set(event) <= set(event_shape) | {"data"}
    assert set(event_shape) - set(event) <= {"context", "account"}


# -- canceling an intent -------------------------------------------------------------


def test_a_canceled_intent_refuses_every_card(gateway: SandboxPayments, clock: Clock) -> None:
    intent_id, secret = embedded(gateway)
    with pytest.raises(PaymentDeclined):
        gateway.confirm_payment_intent(intent_id, "4000000000000002", secret)
    canceled = gateway.cancel_payment_intent(intent_id, "abandoned")
    assert canceled["status"] == "canceled"
    assert (canceled["canceled_at"], canceled["cancellation_reason"]) == (clock.now, "abandoned")
    assert types_of(gateway) == ["payment_intent.payment_failed", "payment_intent.canceled"]
    with pytest.raises(PaymentDeclined, match="canceled"):
        gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)
    with pytest.raises(PaymentsError, match="status of canceled"):
        gateway.cancel_payment_intent(intent_id, "abandoned")
    assert gateway.retrieve_payment_intent(intent_id)["status"] == "canceled"


def test_a_paid_intent_cannot_be_canceled(gateway: SandboxPayments) -> None:
    intent_id, secret = embedded(gateway)
    gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)
    with pytest.raises(PaymentsError, match="status of succeeded"):
        gateway.cancel_payment_intent(intent_id, "abandoned")


def sdk_fields(cls: type) -> set[str]:
    """The fields the pinned SDK (generated for STRIPE_API_VERSION) knows on an object."""
    return {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}


@pytest.mark.parametrize(
    ("event_type", "cls"),
    [
        ("checkout.session.completed", stripe.checkout.Session),
        ("payment_intent.succeeded", stripe.PaymentIntent),
        ("payment_intent.payment_failed", stripe.PaymentIntent),
        ("charge.refunded", stripe.Charge),
        ("refund.failed", stripe.Refund),
        ("charge.refund.updated", stripe.Refund),
        ("charge.dispute.closed", stripe.Dispute),
        ("radar.early_fraud_warning.created", stripe.radar.EarlyFraudWarning),
    ],
)
def test_objects_have_no_field_the_pinned_api_lacks(
    gateway: SandboxPayments, event_type: str, cls: type
) -> None:
    refunded = paid_with(gateway, "4000000000005126", "pur_refund")
    gateway.refund(refunded)
    gateway.fail_refund(refunded)
    gateway.close_dispute(paid_with(gateway, "4000000000000259", "pur_dispute"), won=False)
    intent_id, secret = embedded(gateway)
    with pytest.raises(PaymentDeclined):
        gateway.confirm_payment_intent(intent_id, "4000000000000002", secret)
    gateway.confirm_payment_intent(intent_id, "4000000000005423", secret)
    found = events(gateway, event_type)
    assert found, event_type
    for event in found:
        obj = event["data"]["object"]
        assert set(obj) <= sdk_fields(cls) | {"object"}, set(obj) - sdk_fields(cls)
