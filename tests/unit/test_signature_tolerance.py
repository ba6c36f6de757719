"""Signature timestamps against an explicit ``now``: 300 s either way, both edges included.

``now`` is far from the wall clock, so a check that read the wall clock instead
would give other answers here.
"""

from __future__ import annotations

import json

import pytest

from services.errors import BadSignature
from services.payments.signature import TOLERANCE_S, sign, verify

BODY = json.dumps(
    {"id": "evt_1", "type": "x.y", "livemode": False, "data": {"object": {"id": "o"}}}
).encode()
NOW = 2_000_000_000  # 2033-05-18, years from any wall clock these tests run on


def test_the_tolerance_is_five_minutes() -> None:
    assert TOLERANCE_S == 300


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamps_within_300_seconds_either_way_are_accepted(offset: int) -> None:
    header = sign(BODY, "s", NOW + offset)
    assert verify(BODY, header, ("s",), now=NOW)["id"] == "evt_1"


@pytest.mark.parametrize(
    ("offset", "reason"), [(-301, "too old"), (301, "in the future"), (-86_400, "too old")]
)
def test_timestamps_further_off_are_refused(offset: int, reason: str) -> None:
    header = sign(BODY, "s", NOW + offset)
    with pytest.raises(BadSignature, match=reason):
        verify(BODY, header, ("s",), now=NOW)


def test_the_edge_is_exact_to_a_fraction_of_a_second() -> None:
    header = sign(BODY, "s", NOW - 300)
    assert verify(BODY, header, ("s",), now=NOW)["id"] == "evt_1"
    with pytest.raises(BadSignature, match="too old"):
        verify(BODY, header, ("s",), now=NOW + 0.001)


def test_an_old_timestamp_with_a_wrong_signature_is_a_mismatch_not_an_age() -> None:
    header = sign(BODY, "other", NOW - 301)
    with pytest.raises(BadSignature, match="no matching signature"):
        verify(BODY, header, ("s",), now=NOW)


def test_a_fresh_decoy_timestamp_cannot_vouch_for_an_old_signature() -> None:
    # Stripe's SDK signs with the first item named exactly "t"; an item that only
    # looks like it once stripped must not be the timestamp whose age is checked.
    old = sign(BODY, "s", NOW - 3600)
    with pytest.raises(BadSignature):
        verify(BODY, f" t={NOW},{old}", ("s",), now=NOW)
    with pytest.raises(BadSignature, match="no timestamp"):
        verify(BODY, f"t=+{NOW},{old}", ("s",), now=NOW)
