"""Usage sessions in the pure ledger core, without a store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.errors import InvalidAmount, UsageSessionExpired
from services.ledger.model import (
    Account,
    Operation,
    OpKind,
    SystemAccount,
    TxnType,
    format_time,
)
from services.ledger.rules import plan, validate
from services.ledger.usage import charge_op, close_op, start_op, top_up_op

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def started(balance: int = 100, reserve: int = 40) -> tuple[str, Account]:
    op = start_op("u", reserve, key="call", ttl_s=60, reason="call")
    txn, [after] = plan(validate(op), {"u": Account("u", balance)}, NOW)
    assert [(e.account, e.amount) for e in txn.entries] == [("user:u", 0)]
    return txn.id, after


def test_a_charge_is_one_balanced_transaction_against_spend() -> None:
    sid, account = started()
    txn, [after] = plan(validate(charge_op("u", sid, 15, key="m1")), {"u": account}, NOW)
    assert [(e.account, e.amount, e.type) for e in txn.entries] == [
        ("user:u", -15, TxnType.USAGE),
        (str(SystemAccount.SPEND), 15, TxnType.USAGE),
    ]
    assert (after.balance, after.holds[sid][0], after.metered[sid]) == (85, 25, 15)
    assert dict(txn.refs) == {"session_id": sid, "captured": "15", "remaining": "25"}


def test_the_captured_count_survives_storage_and_old_records_still_load() -> None:
    sid, account = started()
    _, [after] = plan(charge_op("u", sid, 15, key="m1"), {"u": account}, NOW)
    stored = after.to_dict()
    assert "metered" not in stored and stored["holds"][sid][2] == 15
    assert Account.from_dict(stored) == after
    plain = replace(after, holds={"txn_hold": (5, "2099-01-01T00:00:00.000000Z")}, metered={})
    assert plain.to_dict()["holds"] == {"txn_hold": [5, "2099-01-01T00:00:00.000000Z"]}
    assert Account.from_dict(plain.to_dict()).metered == {}


def test_an_expired_session_is_kept_by_other_writes_until_closed() -> None:
    sid, account = started()
    later = NOW + timedelta(seconds=61)
    with pytest.raises(UsageSessionExpired):
        plan(charge_op("u", sid, 1, key="m1"), {"u": account}, later)
    assert account.available(format_time(later)) == 100
    spend = Operation(OpKind.DEBIT, "spend", "u", 5, TxnType.SPEND)
    _, [spent] = plan(spend, {"u": account}, later)
    assert (spent.holds, spent.metered) == (account.holds, account.metered)
    closed, [after] = plan(validate(close_op("u", sid)), {"u": spent}, later)
    assert (closed.refs["captured"], closed.refs["released"]) == ("0", "40")
    assert (after.holds, after.metered) == ({}, {})


def test_closing_moves_no_tokens_and_a_close_with_an_amount_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        validate(replace(close_op("u", "txn_" + "2" * 32), amount=1))
    with pytest.raises(InvalidAmount):
        validate(top_up_op("u", "txn_" + "2" * 32, 0, key="k", ttl_s=None))
