"""The refund and dispute status tables: every status of the pinned API version has an
outcome, records only move forward, and the amounts they take are what the tables say."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from services.payments import disputes, refund_records
from services.payments.disputes import DisputeFact
from services.payments.refund_records import RefundFact


def pinned_dispute_statuses() -> set[str]:
    """The Literal of ``Dispute.status`` in the pinned SDK, read from its source."""
    source = inspect.getsource(stripe.Dispute)
    block = re.search(r"\n    status: Union\[\s*Literal\[(.*?)\]", source, re.DOTALL)
    assert block is not None, "the SDK's Dispute.status is no longer a Literal"
    return set(re.findall(r'"([a-z_]+)"', block.group(1)))


def test_every_dispute_status_of_the_pinned_version_has_an_outcome() -> None:
    assert stripe.api_version == "2026-10-28.endive"
    assert pinned_dispute_statuses() == set(disputes.DISPUTE_RANK)


@pytest.mark.parametrize(
    ("status", "takes"),
    [
        ("warning_needs_response", False),
        ("warning_under_review", False),
        ("warning_closed", False),
        ("needs_response", True),
        ("under_review", True),
        ("lost", True),
        ("appeal_needs_response", True),
        ("appeal_under_review", True),
        ("won", False),
        ("prevented", False),
    ],
)
def test_what_each_dispute_status_takes(status: str, takes: bool) -> None:
    records, change = disputes.learn({}, DisputeFact("dp_1", 500, status))
    assert change is not None
    assert disputes.disputed_amount(records) == (500 if takes else 0)


def test_the_money_events_agree_with_the_statuses() -> None:
    inquiry, _ = disputes.learn({}, DisputeFact("dp_1", 500, "warning_needs_response"))
    withdrawn, _ = disputes.learn(inquiry, DisputeFact("dp_1", 500, "needs_response", "withdrawn"))
    assert disputes.disputed_amount(withdrawn) == 500
    back, _ = disputes.learn(withdrawn, DisputeFact("dp_1", 500, "under_review", "reinstated"))
    assert disputes.disputed_amount(back) == 0
    late, _ = disputes.learn(back, DisputeFact("dp_1", 500, "lost", "withdrawn"))
    assert disputes.disputed_amount(late) == 0  # reinstated money stays reinstated


def test_a_lost_dispute_won_on_appeal() -> None:
    steps = ["needs_response", "lost", "appeal_needs_response", "appeal_under_review", "lost"]
    records: dict[str, dict[str, Any]] = {}
    for status in steps:
        records, _ = disputes.learn(records, DisputeFact("dp_1", 999, status))
        assert disputes.disputed_amount(records) == 999
    assert records["dp_1"]["rank"] == disputes.APPEAL_DECIDED
    records, _ = disputes.learn(records, DisputeFact("dp_1", 999, "appeal_under_review"))
    assert records["dp_1"]["status"] == "lost"  # a late appeal status cannot reopen it
    records, _ = disputes.learn(records, DisputeFact("dp_1", 999, "won"))
    assert disputes.disputed_amount(records) == 0


@given(st.permutations(["needs_response", "under_review", "lost", "won"]))
def test_dispute_events_in_any_order_end_in_one_state(order: list[str]) -> None:
    records: dict[str, dict[str, Any]] = {}
    for status in order:
        records, _ = disputes.learn(records, DisputeFact("dp_1", 999, status))
    assert (records["dp_1"]["status"], disputes.disputed_amount(records)) == ("won", 0)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["re_a", "re_b"]), st.sampled_from(sorted(refund_records.REFUND_RANK))
        ),
        max_size=8,
    )
)
def test_a_refund_record_never_moves_back(events: list[tuple[str, str]]) -> None:
    records: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for refund_id, status in events:
        records, change = refund_records.learn(records, RefundFact(refund_id, 300, status))
        rank = refund_records.REFUND_RANK[status]
        assert (change is not None) == (rank > seen.get(refund_id, -1))
        seen[refund_id] = max(rank, seen.get(refund_id, -1))
        assert refund_records.REFUND_RANK[records[refund_id]["status"]] == seen[refund_id]


@pytest.mark.parametrize(
    ("refunds", "charge", "expected"),
    [
        ({}, 999, 999),  # known only from charge.refunded
        ({"re_a": ("failed", 999)}, 999, 0),  # the charge's total was that refund
        ({"re_a": ("succeeded", 300)}, 999, 999),  # another refund not yet seen by id
        ({"re_a": ("failed", 300), "re_b": ("pending", 699)}, 999, 699),
        ({"re_a": ("canceled", 999), "re_b": ("succeeded", 999)}, 999, 999),
        ({"re_a": ("succeeded", 999), "re_b": ("succeeded", 999)}, 0, 999),  # at most the price
    ],
)
def test_what_the_refunds_take(
    refunds: dict[str, tuple[str, int]], charge: int, expected: int
) -> None:
    records = {k: {"status": status, "amount": amount} for k, (status, amount) in refunds.items()}
    assert refund_records.refunded_amount(records, charge, 999) == expected
