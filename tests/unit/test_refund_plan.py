"""The largest refund a user's unspent tokens cover."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.payments.clawbacks import share
from services.payments.model import Purchase, PurchaseState
from services.payments.refunds import covered_amount


def purchase(tokens: int, amount: int, refunded_amount: int = 0) -> Purchase:
    p = Purchase(
        id="p",
        buyer_id="u",
        user_id="u",
        pack_id="x",
        tokens=tokens,
        amount=amount,
        currency="usd",
        state=PurchaseState.PAID,
        created_at="",
        updated_at="",
    )
    already = share(p, refunded_amount)
    return p.with_changes("", refunded_amount=refunded_amount, refunded_tokens=already)


@given(
    tokens=st.integers(1, 5000),
    amount=st.integers(1, 100_000),
    data=st.data(),
)
def test_the_covered_refund_is_the_largest_whose_clawback_fits(
    tokens: int, amount: int, data: st.DataObject
) -> None:
    refunded = data.draw(st.integers(0, amount))
    p = purchase(tokens, amount, refunded)
    unspent = data.draw(st.integers(0, tokens - p.refunded_tokens))
    most = covered_amount(p, unspent)
    assert 0 <= most <= amount - refunded
    assert share(p, refunded + most) - p.refunded_tokens <= unspent
    if refunded + most < amount:
        assert share(p, refunded + most + 1) - p.refunded_tokens > unspent


def test_the_issue_example() -> None:
    # Bought 110 tokens for 9.99, spent 100: 10 unspent tokens cover 0.99.
    assert covered_amount(purchase(110, 999), 10) == 99
    assert covered_amount(purchase(110, 999), 110) == 999
