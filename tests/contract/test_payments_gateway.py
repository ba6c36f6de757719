"""The payments contract: the same answers, and the same PaymentsError kinds, from the
sandbox and from the Stripe gateway (the real stripe SDK over the fake Stripe API)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pytest
import stripe

from config.catalog import Pack
from config.settings import load_settings
from services.payments.errors import Kind, PaymentsError
from services.payments.port import PaymentsGateway
from services.payments.sandbox import SandboxPayments
from services.payments.stripe_gateway import StripeService
from tests.support.fake_stripe_api import FakeStripeApi

SECRET = "sk_test_51FakeSecretKeyForContract000000000"
PACK = Pack(id="popular", name="Popular", tokens=110, bonus=10, price_cents=999, currency="usd")


class Pay(Protocol):
    def __call__(self, purchase_id: str) -> str: ...


@dataclass(frozen=True)
class Harness:
    gateway: PaymentsGateway
    pay: Pay  # an embedded payment made and paid in full: its payment intent id


def metadata(purchase_id: str) -> dict[str, str]:
    return {"purchase_id": purchase_id, "user_id": "user-1", "pack_id": PACK.id}


def new_intent(gateway: PaymentsGateway, purchase_id: str) -> str:
    intent = gateway.create_payment_intent(
        purchase_id=purchase_id, pack=PACK, customer_id=None, metadata=metadata(purchase_id)
    )
    return intent.id


def sandbox_harness(tmp_path: Path) -> Harness:
    settings = load_settings(
        {"SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"), "SANDBOX_WEBHOOKS": "off"}
    )
    gateway = SandboxPayments(settings)

    def pay(purchase_id: str) -> str:
        intent = gateway.create_payment_intent(
            purchase_id=purchase_id, pack=PACK, customer_id=None, metadata=metadata(purchase_id)
        )
        gateway.confirm_payment_intent(intent.id, "4242424242424242", intent.client_secret)
        return intent.id

    return Harness(gateway, pay)


def stripe_harness(fake: FakeStripeApi) -> Harness:
    gateway = StripeService(stripe, SECRET, api_base=fake.url)

    def pay(purchase_id: str) -> str:
        intent_id = new_intent(gateway, purchase_id)
        # What Stripe.js confirming the intent with a card would leave behind.
        fake.objects["payment_intents"][intent_id].update(
            status="succeeded", amount_received=PACK.price_cents, latest_charge="ch_" + intent_id
        )
        return intent_id

    return Harness(gateway, pay)


@pytest.fixture(params=["sandbox", "stripe"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "sandbox":
        yield sandbox_harness(tmp_path)
        return
    with FakeStripeApi() as fake:
        yield stripe_harness(fake)


def checkout(gateway: PaymentsGateway, purchase_id: str, pack: Pack = PACK) -> Any:
    return gateway.create_checkout_session(
        purchase_id=purchase_id,
        pack=pack,
        customer_id=None,
        client_reference_id="user-1",
        success_url="https://tokens.example/ok?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://tokens.example/cancel",
        metadata=metadata(purchase_id),
        expires_at=1_900_000_000,
    )


def refund(
    gateway: PaymentsGateway, intent_id: str, amount: int | None, key: str
) -> dict[str, Any]:
    return gateway.create_refund(
        payment_intent=intent_id, amount=amount, idempotency_key=key, metadata={"by": "ops"}
    )


def assert_kind(caught: pytest.ExceptionInfo[PaymentsError], kind: Kind) -> None:
    error = caught.value
    assert (error.kind, error.http_status, error.code) == (kind, kind.http_status, kind.code)
    assert not error.transient and error.retry_after_s is None


class TestPaymentsGatewayContract:
    def test_the_same_purchase_gives_the_same_session(self, harness: Harness) -> None:
        first = checkout(harness.gateway, "pur_1")
        assert checkout(harness.gateway, "pur_1") == first
        assert checkout(harness.gateway, "pur_2").id != first.id
        session = harness.gateway.retrieve_session(first.id)
        assert (session["id"], session["amount_total"], session["currency"]) == (
            first.id,
            999,
            "usd",
        )

    def test_a_retrieved_session_lists_its_line_items(self, harness: Harness) -> None:
        """What Payment Link adoption reads: the one item's Stripe price id and quantity."""
        made = checkout(harness.gateway, "pur_priced", replace(PACK, stripe_price_id="price_pop"))
        listed = harness.gateway.retrieve_session(made.id)["line_items"]
        [item] = listed["data"]
        assert (item["price"]["id"], item["quantity"], listed["has_more"]) == (
            "price_pop",
            1,
            False,
        )

    def test_the_same_purchase_gives_the_same_payment_intent(self, harness: Harness) -> None:
        first = harness.gateway.create_payment_intent(
            purchase_id="pur_1", pack=PACK, customer_id=None, metadata=metadata("pur_1")
        )
        again = harness.gateway.create_payment_intent(
            purchase_id="pur_1", pack=PACK, customer_id=None, metadata=metadata("pur_1")
        )
        assert again == first
        assert new_intent(harness.gateway, "pur_2") != first.id
        intent = harness.gateway.retrieve_payment_intent(first.id)
        assert (intent["id"], intent["amount"], intent["client_secret"]) == (
            first.id,
            999,
            first.client_secret,
        )

    def test_an_unknown_session_is_not_found(self, harness: Harness) -> None:
        with pytest.raises(PaymentsError, match="No such") as caught:
            harness.gateway.retrieve_session("cs_test_unknown")
        assert_kind(caught, Kind.NOT_FOUND)
        assert caught.value.not_found

    def test_an_unknown_payment_intent_is_not_found(self, harness: Harness) -> None:
        with pytest.raises(PaymentsError, match="No such payment_intent") as caught:
            harness.gateway.retrieve_payment_intent("pi_unknown")
        assert_kind(caught, Kind.NOT_FOUND)
        with pytest.raises(PaymentsError, match="No such payment_intent") as caught:
            refund(harness.gateway, "pi_unknown", None, "refund-unknown")
        assert_kind(caught, Kind.NOT_FOUND)

    def test_an_over_refund_is_refused(self, harness: Harness) -> None:
        intent_id = harness.pay("pur_1")
        with pytest.raises(PaymentsError, match=r"greater than unrefunded .* \(999\)") as caught:
            refund(harness.gateway, intent_id, 1000, "refund-too-much")
        assert_kind(caught, Kind.REFUSED)
        assert caught.value.refused
        refund(harness.gateway, intent_id, 900, "refund-most")
        with pytest.raises(PaymentsError, match=r"\(100\) is greater .* \(99\)") as caught:
            refund(harness.gateway, intent_id, 100, "refund-over")
        assert_kind(caught, Kind.REFUSED)
        assert refund(harness.gateway, intent_id, None, "refund-rest")["amount"] == 99
        with pytest.raises(PaymentsError, match="already been refunded") as caught:
            refund(harness.gateway, intent_id, None, "refund-again")
        assert_kind(caught, Kind.REFUSED)

    def test_the_same_refund_key_gives_the_same_refund(self, harness: Harness) -> None:
        intent_id = harness.pay("pur_1")
        first = refund(harness.gateway, intent_id, 250, "refund-once")
        assert refund(harness.gateway, intent_id, 250, "refund-once") == first
        assert (first["object"], first["amount"], first["payment_intent"]) == (
            "refund",
            250,
            intent_id,
        )
        # Only one refund was made: what is left is the rest of the payment.
        assert refund(harness.gateway, intent_id, None, "refund-rest")["amount"] == 749
        with pytest.raises(PaymentsError, match="same parameters") as caught:
            refund(harness.gateway, intent_id, 500, "refund-once")
        assert_kind(caught, Kind.REFUSED)

    def test_refunds_are_listed_from_when_they_were_made(self, harness: Harness) -> None:
        intent_id = harness.pay("pur_listed")
        made = [refund(harness.gateway, intent_id, n, f"refund-listed-{n}") for n in (100, 200)]
        listed = {r["id"]: r for r in harness.gateway.list_refunds(created_gte=0)}
        assert {r["id"] for r in made} <= set(listed)
        for one in made:
            shown = listed[one["id"]]
            assert (shown["amount"], shown["payment_intent"]) == (one["amount"], intent_id)
        later = int(max(r["created"] for r in made)) + 1
        assert not {r["id"] for r in made} & {
            r["id"] for r in harness.gateway.list_refunds(created_gte=later)
        }

    def test_an_unpaid_intent_is_canceled_and_a_paid_one_refused(self, harness: Harness) -> None:
        intent_id = new_intent(harness.gateway, "pur_cancel")
        canceled = harness.gateway.cancel_payment_intent(intent_id, "abandoned")
        assert (canceled["id"], canceled["status"]) == (intent_id, "canceled")
        assert canceled["cancellation_reason"] == "abandoned"
        assert isinstance(canceled["canceled_at"], int)
        assert harness.gateway.retrieve_payment_intent(intent_id)["status"] == "canceled"
        paid = harness.pay("pur_paid")
        with pytest.raises(PaymentsError, match="status of succeeded") as caught:
            harness.gateway.cancel_payment_intent(paid, "abandoned")
        assert_kind(caught, Kind.REFUSED)
        with pytest.raises(PaymentsError, match="No such payment_intent") as caught:
            harness.gateway.cancel_payment_intent("pi_unknown", "abandoned")
        assert_kind(caught, Kind.NOT_FOUND)
