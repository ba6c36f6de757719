"""The sandbox as a payments gateway: listings and refunds in Stripe's shapes, no HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.catalog import Pack
from config.errors import ConfigError
from config.settings import load_settings
from services.payments.port import PaymentsError
from services.payments.sandbox import PaymentDeclined, SandboxPayments
from tests.unit.conftest import START, Clock


def start(gateway: SandboxPayments, purchase_id: str, pack_id: str = "popular") -> str:
    pack = gateway_pack(pack_id)
    session = gateway.create_checkout_session(
        purchase_id=purchase_id,
        pack=pack,
        customer_id="cus_test",
        client_reference_id="user-1",
        success_url="http://127.0.0.1/ok?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1/cancel",
        metadata={"purchase_id": purchase_id, "user_id": "user-1", "pack_id": pack_id},
        expires_at=START + 1800,
    )
    return session.id


def gateway_pack(pack_id: str) -> Pack:
    pack = load_settings({}).catalog.get(pack_id)
    assert pack is not None
    return pack


def paid(gateway: SandboxPayments, purchase_id: str, pack_id: str = "popular") -> str:
    """A paid session's payment intent id."""
    session = gateway.pay_with_card(start(gateway, purchase_id, pack_id), "4242 4242 4242 4242")
    return str(session["payment_intent"])


def refund_events(gateway: SandboxPayments) -> list[dict[str, Any]]:
    return list(gateway.list_events(created_gte=0, types=["charge.refunded"]))


def test_paid_sessions_are_listed_as_succeeded_payment_intents(gateway: SandboxPayments) -> None:
    intent_id = paid(gateway, "purchase-1")
    start(gateway, "purchase-open")  # never paid
    gateway.pay_by_bank_debit(start(gateway, "purchase-bank"))  # completed, not yet paid
    payments = list(gateway.list_payments(created_gte=0))
    assert len(payments) == 1
    payment = payments[0]
    session = gateway.retrieve_session(start(gateway, "purchase-1"))
    assert payment == {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 999,
        "amount_capturable": 0,
        "amount_received": 999,
        "capture_method": "automatic",
        "created": START,
        "currency": "usd",
        "customer": "cus_test",
        "last_payment_error": None,
        "latest_charge": payment["latest_charge"],
        "livemode": False,
        "metadata": {"purchase_id": "purchase-1", "user_id": "user-1", "pack_id": "popular"},
        "next_action": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "payment_method_types": ["card"],
        "status": "succeeded",
    }
    assert session["payment_intent"] == intent_id
    assert payment["latest_charge"].startswith("ch_sandbox_")


def test_a_settled_bank_debit_is_a_payment_and_the_time_filter_applies(
    gateway: SandboxPayments, clock: Clock
) -> None:
    session_id = start(gateway, "purchase-bank")
    gateway.pay_by_bank_debit(session_id)
    gateway.settle_bank_debit(session_id, succeeded=True)
    clock.now += 3600
    later = paid(gateway, "purchase-later")
    assert len(list(gateway.list_payments(created_gte=START))) == 2
    assert [p["id"] for p in gateway.list_payments(created_gte=START + 3600)] == [later]
    assert list(gateway.list_payments(created_gte=START + 3601)) == []


def test_events_are_listed_newest_first_filtered_by_type_and_time(
    gateway: SandboxPayments, clock: Clock
) -> None:
    intent_id = paid(gateway, "purchase-1")
    clock.now += 60
    gateway.expire(start(gateway, "purchase-2"))
    clock.now += 60
    gateway.create_refund(
        payment_intent=intent_id, amount=100, idempotency_key="refund-1", metadata={}
    )
    events = list(gateway.list_events(created_gte=START))
    assert [e["type"] for e in events] == [
        "refund.created",
        "charge.refunded",
        "checkout.session.expired",
        "checkout.session.completed",
    ]
    assert [e["created"] for e in events] == [START + 120, START + 120, START + 60, START]
    completed = events[-1]
    assert completed["object"] == "event"
    assert completed["id"].startswith("evt_sandbox_")
    assert completed["livemode"] is False
    assert completed["data"]["object"]["payment_status"] == "paid"
    assert completed["data"]["object"]["payment_intent"] == intent_id
    assert [e["type"] for e in gateway.list_events(created_gte=START + 60)] == [
        "refund.created",
        "charge.refunded",
        "checkout.session.expired",
    ]
    assert list(gateway.list_events(created_gte=START + 121)) == []
    only = gateway.list_events(
        created_gte=0, types=["checkout.session.completed", "charge.dispute.created"]
    )
    assert [e["id"] for e in only] == [completed["id"]]


def test_listed_events_are_the_outbox_payloads_and_stay_undelivered(
    gateway: SandboxPayments,
) -> None:
    paid(gateway, "purchase-1")
    assert gateway.pending_deliveries() == 1
    assert gateway.deliver_due() is False  # withheld: never POSTed
    assert gateway.pending_deliveries() == 1
    [event] = gateway.list_events(created_gte=0)
    with gateway.db.connect() as conn:
        [(payload,)] = conn.execute("SELECT payload FROM outbox").fetchall()
    assert json.loads(payload) == event


def test_refunds_are_cumulative_on_the_charge(gateway: SandboxPayments) -> None:
    intent_id = paid(gateway, "purchase-1")
    first = gateway.create_refund(
        payment_intent=intent_id,
        amount=300,
        idempotency_key="refund-a",
        metadata={"reason": "goodwill"},
    )
    assert first == {
        "id": first["id"],
        "object": "refund",
        "amount": 300,
        "balance_transaction": None,
        "charge": first["charge"],
        "created": START,
        "currency": "usd",
        "customer": "cus_test",
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {"reason": "goodwill"},
        "payment_intent": intent_id,
        "payment_method": None,
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    assert first["id"].startswith("re_sandbox_")
    [payment] = gateway.list_payments(created_gte=0)
    assert first["charge"] == payment["latest_charge"]
    rest = gateway.create_refund(
        payment_intent=intent_id, amount=None, idempotency_key="refund-b", metadata={}
    )
    assert rest["amount"] == 699
    charges = [e["data"]["object"] for e in reversed(refund_events(gateway))]
    assert [(c["amount_refunded"], c["refunded"]) for c in charges] == [(300, False), (999, True)]
    assert {c["id"] for c in charges} == {first["charge"]}
    assert {c["payment_intent"] for c in charges} == {intent_id}


def test_a_refund_key_used_again_returns_the_first_refund_and_changes_nothing(
    gateway: SandboxPayments,
) -> None:
    intent_id = paid(gateway, "purchase-1")

    def refund() -> dict[str, Any]:
        return gateway.create_refund(
            payment_intent=intent_id,
            amount=250,
            idempotency_key="refund-once",
            metadata={"by": "ops"},
        )

    first = refund()
    again = refund()
    assert again == first
    assert [e["data"]["object"]["amount_refunded"] for e in refund_events(gateway)] == [250]
    with pytest.raises(PaymentsError, match="same parameters"):
        gateway.create_refund(
            payment_intent=intent_id, amount=500, idempotency_key="refund-once", metadata={}
        )
    assert len(refund_events(gateway)) == 1


def test_a_refund_above_what_is_left_is_refused(gateway: SandboxPayments) -> None:
    intent_id = paid(gateway, "purchase-1")
    with pytest.raises(PaymentsError, match=r"greater than unrefunded amount on charge \(999\)"):
        gateway.create_refund(
            payment_intent=intent_id, amount=1000, idempotency_key="too-much", metadata={}
        )
    gateway.create_refund(payment_intent=intent_id, amount=900, idempotency_key="r1", metadata={})
    with pytest.raises(PaymentsError, match=r"\(100\) is greater than unrefunded .* \(99\)"):
        gateway.create_refund(
            payment_intent=intent_id, amount=100, idempotency_key="r2", metadata={}
        )
    gateway.create_refund(payment_intent=intent_id, amount=None, idempotency_key="r3", metadata={})
    with pytest.raises(PaymentsError, match="already been refunded"):
        gateway.create_refund(
            payment_intent=intent_id, amount=None, idempotency_key="r4", metadata={}
        )
    with pytest.raises(PaymentsError, match="positive"):
        gateway.create_refund(
            payment_intent=paid(gateway, "purchase-2"),
            amount=0,
            idempotency_key="r5",
            metadata={},
        )
    assert [e["data"]["object"]["amount_refunded"] for e in reversed(refund_events(gateway))] == [
        900,
        999,
    ]


def test_refunding_an_unknown_or_unpaid_payment_is_refused(gateway: SandboxPayments) -> None:
    with pytest.raises(PaymentsError, match="No such payment_intent"):
        gateway.create_refund(
            payment_intent="pi_missing", amount=None, idempotency_key="k1", metadata={}
        )
    session = gateway.pay_by_bank_debit(start(gateway, "purchase-bank"))
    with pytest.raises(PaymentsError, match="has not succeeded"):
        gateway.create_refund(
            payment_intent=session["payment_intent"],
            amount=None,
            idempotency_key="k2",
            metadata={},
        )
    assert refund_events(gateway) == []


def test_the_dashboard_refund_adds_to_api_refunds(gateway: SandboxPayments) -> None:
    intent_id = paid(gateway, "purchase-1")
    gateway.create_refund(payment_intent=intent_id, amount=400, idempotency_key="k", metadata={})
    gateway.refund(start(gateway, "purchase-1"), 100)
    with pytest.raises(PaymentsError, match=r"\(500\) is greater .* \(499\)"):
        gateway.create_refund(
            payment_intent=intent_id, amount=500, idempotency_key="k2", metadata={}
        )


def test_webhooks_are_on_unless_set_off(tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.db")
    assert SandboxPayments(load_settings({"SANDBOX_DB_PATH": path})).webhooks_on is True
    off = load_settings({"SANDBOX_DB_PATH": path, "SANDBOX_WEBHOOKS": " OFF "})
    assert SandboxPayments(off).webhooks_on is False
    with pytest.raises(ConfigError, match="SANDBOX_WEBHOOKS must be on or off"):
        load_settings({"SANDBOX_WEBHOOKS": "sometimes"})


# -- embedded payment intents ----------------------------------------------------


def embedded(gateway: SandboxPayments, purchase_id: str = "pur_pi") -> tuple[str, str]:
    intent = gateway.create_payment_intent(
        purchase_id=purchase_id,
        pack=gateway_pack("popular"),
        customer_id="cus_test",
        metadata={"purchase_id": purchase_id, "user_id": "user-1", "pack_id": "popular"},
    )
    return intent.id, intent.client_secret


def test_one_payment_intent_per_purchase(gateway: SandboxPayments) -> None:
    first = embedded(gateway)
    assert embedded(gateway) == first
    assert embedded(gateway, "pur_other")[0] != first[0]
    intent = gateway.retrieve_payment_intent(first[0])
    assert (intent["status"], intent["amount"], intent["amount_received"]) == (
        "requires_payment_method",
        999,
        0,
    )
    assert intent["client_secret"] == first[1]


def test_a_declined_card_sends_payment_failed_and_leaves_the_intent_open(
    gateway: SandboxPayments,
) -> None:
    intent_id, secret = embedded(gateway)
    with pytest.raises(PaymentDeclined, match="declined"):
        gateway.confirm_payment_intent(intent_id, "4000 0000 0000 0002", secret)

    failed = list(gateway.list_events(created_gte=0, types=["payment_intent.payment_failed"]))
    assert len(failed) == 1
    obj = failed[0]["data"]["object"]
    assert (obj["id"], obj["status"]) == (intent_id, "requires_payment_method")
    assert obj["last_payment_error"]["code"] == "card_declined"
    assert secret not in json.dumps(failed[0])
    assert list(gateway.list_payments(created_gte=0)) == []

    # another card then pays the same intent, once
    paid_intent = gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)
    again = gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)
    assert paid_intent["status"] == again["status"] == "succeeded"
    succeeded = list(gateway.list_events(created_gte=0, types=["payment_intent.succeeded"]))
    assert [e["data"]["object"]["amount_received"] for e in succeeded] == [999]
    assert [p["id"] for p in gateway.list_payments(created_gte=0)] == [intent_id]


def test_a_wrong_client_secret_confirms_nothing(gateway: SandboxPayments) -> None:
    intent_id, secret = embedded(gateway)
    with pytest.raises(PaymentsError, match="No such payment_intent"):
        gateway.confirm_payment_intent(intent_id, "4242424242424242", secret + "x")
    with pytest.raises(PaymentsError, match="No such payment_intent"):
        gateway.confirm_payment_intent("pi_sandbox_unknown", "4242424242424242", secret)
    assert gateway.retrieve_payment_intent(intent_id)["status"] == "requires_payment_method"
    assert list(gateway.list_events(created_gte=0)) == []


def test_an_embedded_payment_refunds_like_a_session(gateway: SandboxPayments) -> None:
    intent_id, secret = embedded(gateway)
    gateway.confirm_payment_intent(intent_id, "4242424242424242", secret)
    refund = gateway.create_refund(
        payment_intent=intent_id, amount=500, idempotency_key="r1", metadata={}
    )
    assert (refund["payment_intent"], refund["amount"]) == (intent_id, 500)
    charge = refund_events(gateway)[0]["data"]["object"]
    assert (charge["payment_intent"], charge["amount_refunded"]) == (intent_id, 500)


def test_a_checkout_sessions_payment_intent_is_retrievable(gateway: SandboxPayments) -> None:
    intent_id = paid(gateway, "pur_cs")
    intent = gateway.retrieve_payment_intent(intent_id)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 999)
    assert "client_secret" not in intent
