"""On both stores: embedded payments' intents are canceled once they are as old as a
checkout session can be, or after three declines; ``payment_intent.canceled`` closes
the purchase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.ledger.model import format_time
from services.payments.intent_attempts import IntentAttempts
from services.payments.model import Purchase, PurchaseLimits, PurchaseState
from services.payments.sandbox import PaymentDeclined, SandboxPayments
from services.store.port import Store
from tests.support.clock import Clock
from tests.support.offline_sandbox import offline_sandbox
from tests.unit.test_sandbox_gateway import gateway_pack

LIMITS = PurchaseLimits()
START = datetime(2027, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> SandboxPayments:
    return offline_sandbox(tmp_path, monkeypatch, lambda: clock().timestamp())


def started(store: Store, sandbox: SandboxPayments, clock: Clock, n: int) -> tuple[Purchase, str]:
    """A pending embedded purchase with its intent; the intent's client secret."""
    purchase_id = f"pur_{n}"
    intent = sandbox.create_payment_intent(
        purchase_id=purchase_id, pack=gateway_pack("starter"), customer_id=None, metadata={}
    )
    stamp = format_time(clock())
    purchase = Purchase(
        id=purchase_id,
        buyer_id="user-1",
        user_id="user-1",
        pack_id="starter",
        tokens=50,
        amount=499,
        currency="usd",
        state=PurchaseState.PENDING,
        created_at=stamp,
        updated_at=stamp,
        source="payment_intent",
        payment_intent_id=intent.id,
    )
    return store.start_purchase(purchase, LIMITS, clock()), intent.client_secret


def canceled_events(sandbox: SandboxPayments) -> list[dict[str, Any]]:
    return list(sandbox.list_events(created_gte=0, types=["payment_intent.canceled"]))


def test_intents_as_old_as_a_checkout_session_are_canceled_and_expire(
    store: Store, sandbox: SandboxPayments, clock: Clock
) -> None:
    intents = IntentAttempts(store, sandbox, LIMITS, clock)
    old, secret = started(store, sandbox, clock, 1)
    clock.advance(LIMITS.open_session_s - 60)
    young, _ = started(store, sandbox, clock, 2)
    assert intents.cancel_stale() == 0  # nothing is old enough yet
    clock.advance(60)
    assert intents.cancel_stale() == 1
    assert store.get_purchase(old.id).state is PurchaseState.EXPIRED  # type: ignore[union-attr]
    assert store.get_purchase(young.id).state is PurchaseState.PENDING  # type: ignore[union-attr]
    [event] = canceled_events(sandbox)
    assert event["data"]["object"]["cancellation_reason"] == "abandoned"
    with pytest.raises(PaymentDeclined):
        sandbox.confirm_payment_intent(str(old.payment_intent_id), "4242424242424242", secret)
    # the event that follows changes nothing more; running again cancels nothing new
    assert intents.canceled(event["data"]["object"]) == "expired"
    assert intents.cancel_stale() == 0


def test_a_paid_intent_is_never_canceled(
    store: Store, sandbox: SandboxPayments, clock: Clock
) -> None:
    intents = IntentAttempts(store, sandbox, LIMITS, clock)
    purchase, secret = started(store, sandbox, clock, 1)
    sandbox.confirm_payment_intent(str(purchase.payment_intent_id), "4242424242424242", secret)
    clock.advance(LIMITS.open_session_s + 1)
    assert intents.cancel_stale() == 0  # Stripe refuses; the credit follows its own event
    assert canceled_events(sandbox) == []


def test_the_third_decline_cancels_and_fails_the_purchase(
    store: Store, sandbox: SandboxPayments, clock: Clock
) -> None:
    intents = IntentAttempts(store, sandbox, LIMITS, clock)
    purchase, _ = started(store, sandbox, clock, 1)
    assert [intents.declined(purchase) for _ in range(2)] == ["payment_declined"] * 2
    assert canceled_events(sandbox) == []
    assert intents.declined(purchase) == "failed"
    stored = store.get_purchase(purchase.id)
    assert stored is not None
    assert (stored.state, stored.declines) == (PurchaseState.FAILED, 3)
    assert len(canceled_events(sandbox)) == 1


def test_without_a_gateway_declines_are_counted_and_nothing_is_canceled(
    store: Store, sandbox: SandboxPayments, clock: Clock
) -> None:
    intents = IntentAttempts(store, None, LIMITS, clock)
    purchase, _ = started(store, sandbox, clock, 1)
    for _ in range(4):
        intents.declined(purchase)
    stored = store.get_purchase(purchase.id)
    assert stored is not None and (stored.state, stored.declines) == (PurchaseState.PENDING, 4)
    clock.advance(timedelta(hours=1).total_seconds())
    assert intents.cancel_stale() == 0
