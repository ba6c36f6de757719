"""The pure ledger rules, without a store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.errors import AccountNotFound, InvalidCursor
from services.ledger.model import (
    Account,
    HistoryPosition,
    Operation,
    OpKind,
    TxnType,
    format_time,
    parse_time,
)
from services.ledger.rules import plan, validate
from services.tokens import decode_cursor, encode_cursor

NOW = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


@given(balance=st.integers(0, 10**6), debt=st.integers(0, 10**6), amount=st.integers(1, 10**6))
def test_a_clawback_never_leaves_a_negative_balance(balance: int, debt: int, amount: int) -> None:
    op = validate(Operation(OpKind.CLAWBACK, "k", "u", amount, TxnType.REFUND))
    txn, [after] = plan(op, {"u": Account("u", balance, debt)}, NOW)
    assert sum(e.amount for e in txn.entries) == 0
    assert after.balance == max(0, balance - amount)
    assert after.debt == debt + max(0, amount - balance)


def test_the_fingerprint_covers_every_field_of_the_request() -> None:
    base = Operation(OpKind.CREDIT, "k", "u", 5, TxnType.GRANT, "r", refs={"a": "1"})
    variants = [
        Operation(OpKind.CREDIT, "k", "u", 6, TxnType.GRANT, "r", refs={"a": "1"}),
        Operation(OpKind.CREDIT, "k", "v", 5, TxnType.GRANT, "r", refs={"a": "1"}),
        Operation(OpKind.CREDIT, "k", "u", 5, TxnType.PURCHASE, "r", refs={"a": "1"}),
        Operation(OpKind.CREDIT, "k", "u", 5, TxnType.GRANT, "s", refs={"a": "1"}),
        Operation(OpKind.CREDIT, "k", "u", 5, TxnType.GRANT, "r", refs={"a": "2"}),
    ]
    assert len({v.fingerprint() for v in variants} | {base.fingerprint()}) == 6


def test_plan_needs_every_account_it_touches() -> None:
    op = Operation(OpKind.TRANSFER, "k", "u", 1, TxnType.TRANSFER, counterparty_id="v")
    with pytest.raises(AccountNotFound, match="v"):
        plan(op, {"u": Account("u", 10)}, NOW)


def test_times_round_trip_as_fixed_width_utc_text() -> None:
    text = format_time(NOW)
    assert text == "2026-01-02T03:04:05.000006Z"
    assert parse_time(text) == NOW


@given(st.integers(1, 2**62), st.integers(0, 2**62), st.sampled_from(["txn_ab12-0", "e_x-3"]))
def test_cursors_round_trip(seq: int, balance: int, entry_id: str) -> None:
    position = HistoryPosition(seq, balance, entry_id)
    assert decode_cursor(encode_cursor(position)) == position
    assert decode_cursor(encode_cursor(HistoryPosition(seq))) == HistoryPosition(seq)


@pytest.mark.parametrize("cursor", ["", "!!", "czA", "cy0x", "eDU"])
def test_cursors_that_were_not_issued_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
