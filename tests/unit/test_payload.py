"""The one reader of Stripe payload fields: a bool is never an amount."""

from __future__ import annotations

import pytest

from services.errors import InvalidPayload
from services.payments import payload

CHARGE = {"object": "charge", "id": "ch_1", "amount_refunded": 500, "paid": True}


def test_fields_of_the_asked_type_or_absent() -> None:
    assert payload.field(CHARGE, "id") == "ch_1"
    assert payload.field(CHARGE, "amount_refunded", int) == 500
    assert payload.field(CHARGE, "paid", bool) is True
    assert payload.field(CHARGE, "missing", int) is None
    with pytest.raises(InvalidPayload, match=r"charge\.id has the wrong type"):
        payload.field(CHARGE, "id", int)


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_no_integer_to_either_reader(value: bool) -> None:
    charge = {**CHARGE, "amount_refunded": value}
    with pytest.raises(InvalidPayload, match="wrong type"):
        payload.field(charge, "amount_refunded", int)
    with pytest.raises(InvalidPayload, match="must be a whole amount"):
        payload.amount(charge, "amount_refunded")
    assert payload.field(charge, "amount_refunded", (int, bool)) is value


def test_amounts_are_required_and_within_stripes_range() -> None:
    assert payload.amount(CHARGE, "amount_refunded") == 500
    for bad in ({}, {"amount_refunded": "500"}, {"amount_refunded": 5.0}):
        with pytest.raises(InvalidPayload, match="must be a whole amount"):
            payload.amount({**CHARGE, **bad} if bad else {"object": "charge"}, "amount_refunded")
    for outside in (-1, payload.MAX_STRIPE_AMOUNT + 1):
        with pytest.raises(InvalidPayload, match="is not a Stripe amount"):
            payload.amount({**CHARGE, "amount_refunded": outside}, "amount_refunded")


def test_text_is_required_and_not_empty() -> None:
    assert payload.text(CHARGE, "id") == "ch_1"
    for bad in ("", None, 7):
        with pytest.raises(InvalidPayload, match=r"charge\.id is missing"):
            payload.text({**CHARGE, "id": bad}, "id")
