"""Purchases held in review, on every store: an operator's approval credits once, however
many approvals race, and a refund of a purchase never credited takes no tokens."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import cast

import pytest

from config.catalog import load_catalog
from services.errors import DomainError
from services.ledger.model import TxnType
from services.operations.actions import ActionRequest, AdminActions
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState, User
from services.payments.port import PaymentsGateway
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger
from tests.contract.conftest import StoreFactory
from tests.support.purchases import charge_event, event, session_object
from tests.support.records import purchase_record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ADMIN = User(id="admin-1", email="ops@example.com")


def fulfilment(store: Store) -> Fulfilment:
    return Fulfilment(store, TokenLedger(store), load_catalog(None), SecurityService(store))


def held(store: Store) -> Purchase:
    """A checkout whose paid event reported the wrong amount."""
    store.ensure_user(User(id="buyer"), NOW)
    purchase = purchase_record("pur_held", "buyer", NOW, session_id="cs_test_held_0001")
    store.start_purchase(purchase, None, NOW)
    obj = session_object("cs_test_held_0001", "pur_held", "buyer", amount_total=100)
    fulfilment(store).handle_event(event("checkout.session.completed", obj))
    found = store.get_purchase("pur_held")
    assert found is not None and found.state is PurchaseState.NEEDS_REVIEW
    assert found.payment_intent_id == obj["payment_intent"]  # kept, so it can be refunded
    return found


def actions(store: Store) -> AdminActions:
    no_provider = cast(PaymentsGateway, None)  # approvals never call the provider
    return AdminActions(store, TokenLedger(store), fulfilment(store), no_provider)


def test_racing_approvals_credit_once(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(2)]
    held(stores[0])

    def approve(n: int) -> str:
        try:
            actions(stores[n % 2]).approve(ADMIN, "pur_held", ActionRequest(f"form-{n}"))
        except DomainError as exc:
            return exc.code
        return "approved"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(approve, range(8)))
    assert "approved" in outcomes
    assert set(outcomes) <= {"approved", "action_refused"}
    assert stores[0].get_account("buyer").balance == 110
    paid = stores[1].get_purchase("pur_held")
    assert paid is not None and paid.state is PurchaseState.PAID
    credits = [e for e in TokenLedger(stores[0]).history("buyer").entries if e.amount]
    assert [e.amount for e in credits] == [110]
    approvals = stores[0].list_audit(20, target="purchase:pur_held")
    assert len(approvals) == outcomes.count("approved")
    assert {r.admin_id for r in approvals} == {ADMIN.id}


def test_the_same_form_twice_is_one_approval(store: Store) -> None:
    held(store)
    first = actions(store).approve(ADMIN, "pur_held", ActionRequest("form-1", "checked"))
    again = actions(store).approve(ADMIN, "pur_held", ActionRequest("form-1", "checked"))
    assert (first.replayed, again.replayed, again.audit) == (False, True, first.audit)
    assert store.get_account("buyer").balance == 110
    assert len(store.list_audit(5)) == 1


def test_refunding_a_held_purchase_takes_no_tokens_and_blocks_approval(store: Store) -> None:
    purchase = held(store)
    TokenLedger(store).credit("buyer", 30, key="grant-1", type=TxnType.GRANT)
    outcome = fulfilment(store).handle_event(
        charge_event(str(purchase.payment_intent_id), 999, 999)
    )
    assert outcome == "refund_unchanged"
    refunded = store.get_purchase("pur_held")
    assert refunded is not None
    assert (refunded.refunded_amount, refunded.refunded_tokens) == (999, 0)
    account = store.get_account("buyer")
    assert (account.balance, account.debt) == (30, 0)
    with pytest.raises(DomainError, match="refunded or disputed"):
        actions(store).approve(ADMIN, "pur_held", ActionRequest("form-2"))
    assert store.get_account("buyer").balance == 30
