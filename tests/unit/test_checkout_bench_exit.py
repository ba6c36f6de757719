"""When ``bench.checkout_bench`` exits with 1: a start that did not begin, but for
the 503s of contention in the one-buyer row (see its module docstring)."""

from __future__ import annotations

import pytest

from bench.checkout_bench import MANY, ONE, SERIAL, Row, as_expected


def row(variant: str, *outcomes: str) -> Row:
    return Row("this work", "firestore-emulator", variant, [(0, 0.0, 1.0, o) for o in outcomes])


@pytest.mark.parametrize("variant", [MANY, ONE, SERIAL])
def test_a_row_of_started_checkouts_is_as_expected(variant: str) -> None:
    assert as_expected(row(variant, "started", "started"))


@pytest.mark.parametrize("outcome", ["contention", "StorageUnavailable"])
def test_one_buyers_starts_may_end_in_contention(outcome: str) -> None:
    assert as_expected(row(ONE, "started", outcome))
    assert not as_expected(row(MANY, "started", outcome))
    assert not as_expected(row(SERIAL, "started", outcome))


@pytest.mark.parametrize("outcome", ["refused", "KeyError"])
def test_any_other_failure_is_not(outcome: str) -> None:
    assert not as_expected(row(ONE, "started", outcome))
