"""A won dispute's restore, killed before its debt repayment, is repaid by the retry.

The buyer spent both packs, a dispute on one took its tokens back into debt,
and the dispute is won: the restore gives the tokens back and must repay the
debt from them. The process dies between the two (the AFTER_RESTORE_COMMIT
fault point, armed here to raise instead of SIGKILL); Stripe's retry of
``charge.dispute.closed`` must repay the debt once, on both stores.
"""

from __future__ import annotations

import uuid

import pytest

from config.catalog import load_catalog
from services import faults
from services.faults import AFTER_RESTORE_COMMIT, FaultInjector, parse_spec
from services.ledger.model import TxnType, format_time
from services.payments.checkout import purchase_id_for
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.purchases import dispute_event, event, session_object

PACK = "popular"
TOKENS, PRICE = 110, 999


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after the fault point runs."""


def _kill() -> None:
    raise Killed


def _buy(store: Store, fulfilment: Fulfilment, user: str, name: str) -> str:
    """A paid popular pack for ``user``; returns its payment intent."""
    session_id, intent = f"cs_test_{name}", f"pi_{name}"
    now = fulfilment.clock()
    stamp = format_time(now)
    record = Purchase(
        id=purchase_id_for(user, session_id),
        buyer_id=user,
        user_id=user,
        gift_from=None,
        pack_id=PACK,
        tokens=TOKENS,
        amount=PRICE,
        currency="usd",
        state=PurchaseState.PENDING,
        created_at=stamp,
        updated_at=stamp,
        session_id=session_id,
        payment_intent_id=intent,
    )
    store.start_purchase(record, None, now)
    paid = session_object(session_id, record.id, user, payment_intent=intent)
    assert fulfilment.handle_event(event("checkout.session.completed", paid)) == "paid"
    return intent


def test_a_restore_killed_before_repaying_is_repaid_by_the_retry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = TokenLedger(store)
    fulfilment = Fulfilment(store, ledger, load_catalog(None), SecurityService(store))
    tag = uuid.uuid4().hex[:10]
    user = f"{tag}-buyer"
    disputed = _buy(store, fulfilment, user, f"{tag}a")
    _buy(store, fulfilment, user, f"{tag}b")
    ledger.spend(user, 2 * TOKENS, key=f"{tag}-spend-all")
    opened = dispute_event("charge.dispute.created", disputed, PRICE, "needs_response")
    assert fulfilment.handle_event(opened) == "dispute_clawed_back"
    assert (ledger.balance(user).balance, ledger.balance(user).debt) == (0, TOKENS)

    won = dispute_event("charge.dispute.closed", disputed, PRICE, "won")
    armed = FaultInjector(parse_spec(f"{AFTER_RESTORE_COMMIT}:1"), kill=_kill)
    monkeypatch.setattr(faults, "_injector", armed)
    with pytest.raises(Killed):
        fulfilment.handle_event(won)
    restored = ledger.balance(user)
    assert (restored.balance, restored.debt) == (TOKENS, TOKENS)  # killed before repaying

    assert fulfilment.handle_event(won) == "dispute_won"  # Stripe's retry
    assert fulfilment.handle_event(won) == "dispute_won"  # and one more copy
    account = ledger.balance(user)
    assert (account.balance, account.debt) == (0, 0)
    repayments = [
        e for e in ledger.history(user, limit=50).entries if e.type is TxnType.DEBT_REPAYMENT
    ]
    assert [abs(e.amount) for e in repayments] == [TOKENS]
