"""The stored shapes of purchases and accounts: every field, and nothing shared with the object."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from services.ledger.model import Account
from services.payments.model import Purchase, PurchaseState
from tests.support.records import purchase_record


def purchase() -> Purchase:
    return purchase_record(
        "pur_1",
        "buyer",
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        PurchaseState.PAID,
        refunds={"re_1": {"amount": 500, "status": "succeeded"}},
        disputes={"dp_1": {"amount": 999, "status": "lost", "rank": 3, "funds": "withdrawn"}},
        followed=["txn_1"],
    )


def test_a_purchase_dict_has_every_field_in_order_and_the_state_as_text() -> None:
    expected = {**asdict(purchase()), "state": "paid"}
    data = purchase().to_dict()
    assert data == expected
    assert list(data) == list(expected)
    assert Purchase.from_dict(data) == purchase()


def test_changing_a_purchase_dict_leaves_the_purchase_as_it_was() -> None:
    kept = purchase()
    data = kept.to_dict()
    data["refunds"]["re_1"]["amount"] = 1
    data["disputes"]["dp_1"]["status"] = "won"
    data["followed"].append("txn_2")
    assert kept == purchase()


def test_a_record_nested_deeper_is_copied_too() -> None:
    kept = purchase_record(
        "pur_2",
        "buyer",
        datetime(2026, 1, 2, tzinfo=UTC),
        PurchaseState.PAID,
        refunds={"re_1": {"amount": 500, "parts": [{"amount": 200}], "by": {"who": "ops"}}},
    )
    data = kept.to_dict()
    data["refunds"]["re_1"]["parts"][0]["amount"] = 1
    data["refunds"]["re_1"]["by"]["who"] = "someone else"
    assert kept.refunds["re_1"] == {"amount": 500, "parts": [{"amount": 200}], "by": {"who": "ops"}}


def test_an_account_dict_keeps_a_sessions_captured_count_in_its_hold() -> None:
    account = Account(
        "u1", 50, 0, 3, "t", holds={"h1": (5, "z"), "s1": (7, "y")}, metered={"s1": 2}
    )
    data = account.to_dict()
    assert data == {
        "user_id": "u1",
        "balance": 50,
        "debt": 0,
        "seq": 3,
        "created_at": "t",
        "holds": {"h1": [5, "z"], "s1": [7, "y", 2]},
    }
    assert Account.from_dict(data) == account
