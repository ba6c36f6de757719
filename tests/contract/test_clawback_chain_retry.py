"""A crash part-way through a clawback's chain: the retry finds the hops made and continues.

On each store, in process: a buyer tips two users, a refund finds nothing in
the buyer's account, and the process dies after the first hop (the second
hop's operation fails). The redelivered event takes nothing twice: the first
hop is found by its key, the second is made, and the buyer's debt is the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import pytest

from config.catalog import load_catalog
from services.errors import StorageUnavailable
from services.ledger.model import Operation, OpKind, TxnType, format_time
from services.payments.checkout import purchase_id_for
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState, User
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.purchases import charge_event, event, session_object

TOKENS, PRICE = 110, 999


class Crash(StorageUnavailable):
    """The process died before this operation committed."""


def paid_purchase(store: Store, fulfilment: Fulfilment, buyer: str) -> str:
    now = fulfilment.clock()
    session_id = f"cs_test_{uuid.uuid4().hex[:16]}"
    record = Purchase(
        id=purchase_id_for(buyer, session_id),
        buyer_id=buyer,
        user_id=buyer,
        pack_id="popular",
        tokens=TOKENS,
        amount=PRICE,
        currency="usd",
        state=PurchaseState.PENDING,
        created_at=format_time(now),
        updated_at=format_time(now),
        session_id=session_id,
        payment_intent_id=f"pi_{uuid.uuid4().hex[:16]}",
    )
    store.start_purchase(record, None, now)
    obj = session_object(session_id, record.id, buyer, payment_intent=record.payment_intent_id)
    assert fulfilment.handle_event(event("checkout.session.completed", obj)) == "paid"
    return str(record.payment_intent_id)


def crash_on_hop(store: Store, number: int) -> Callable[[], None]:
    """Make the ``number``-th hop fail before it commits; returns the undo."""
    apply = store.apply
    hops = 0

    def failing(op: Operation, now: datetime) -> object:
        nonlocal hops
        if op.kind is OpKind.CLAWBACK_HOP:
            hops += 1
            if hops == number:
                raise Crash("killed before the hop committed")
        return apply(op, now)

    store.apply = failing  # type: ignore[method-assign,assignment]
    return lambda: setattr(store, "apply", apply)


def test_a_retry_after_a_crash_mid_chain_continues_without_taking_twice(store: Store) -> None:
    ledger = TokenLedger(store)
    fulfilment = Fulfilment(store, ledger, load_catalog(None), SecurityService(store))
    tag = uuid.uuid4().hex[:8]
    buyer, first, second = (f"{tag}-{name}" for name in ("buyer", "first", "second"))
    now = fulfilment.clock()
    for user in (buyer, first, second):
        store.ensure_user(User(id=user, created_at=format_time(now)), now)
    intent = paid_purchase(store, fulfilment, buyer)
    ledger.transfer(buyer, first, 60, key=f"{tag}-tip1")
    ledger.transfer(buyer, second, 50, key=f"{tag}-tip2")
    ledger.spend(first, 20, key=f"{tag}-spend")  # first holds 40 of its 60

    undo = crash_on_hop(store, 2)
    refund = charge_event(intent, PRICE, PRICE)
    with pytest.raises(Crash):
        fulfilment.handle_event(refund)
    undo()
    # The clawback and the first hop (the most recent tip: second's 50) committed.
    assert ledger.balance(second).balance == 0
    assert ledger.balance(first).balance == 40
    assert ledger.balance(buyer).debt == 60

    # Stripe redelivers; then once more under another event id.
    assert fulfilment.handle_event(refund) == "refund_unchanged"
    assert fulfilment.handle_event(event("charge.refunded", refund["data"]["object"])) == (
        "refund_unchanged"
    )
    assert (ledger.balance(first).balance, ledger.balance(first).debt) == (0, 0)
    assert (ledger.balance(second).balance, ledger.balance(second).debt) == (0, 0)
    assert (ledger.balance(buyer).balance, ledger.balance(buyer).debt) == (0, 20)
    hops = [e for e in ledger.history(buyer, limit=20).entries if e.type is TxnType.CLAWBACK_HOP]
    assert len(hops) == 2  # one per tip, none twice
    stored = store.find_purchase(payment_intent_id=intent)
    assert stored is not None
    assert stored.followed == []  # walked to its end
