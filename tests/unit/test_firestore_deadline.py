"""The Firestore call budget: clipped RPC timeouts, a refusal once spent, the outage memory."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from services.store.firestore_deadline import (
    DOWN_BUDGET_S,
    BudgetSpent,
    DeadlineInterceptor,
    OutageMemory,
    budget,
    remaining_s,
)


class Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any = None
    credentials: Any = None
    wait_for_ready: Any = None
    compression: Any = None


def _sent(details: Details) -> Any:
    """What the interceptor hands on to the channel for ``details``."""
    return DeadlineInterceptor().intercept_unary_unary(lambda d, _r: d, details, None)


def test_outside_a_budget_an_rpc_is_left_alone() -> None:
    assert _sent(Details("/Commit", 60.0)).timeout == 60.0


def test_inside_a_budget_each_rpc_gets_at_most_the_time_left() -> None:
    with budget(OutageMemory(5.0)):
        assert _sent(Details("/Commit", 60.0)).timeout <= 5.0
        assert _sent(Details("/Commit", None)).timeout <= 5.0
        assert _sent(Details("/Commit", 1.0)).timeout == 1.0


def test_a_nested_budget_shares_the_outer_one() -> None:
    with budget(OutageMemory(5.0)), budget(OutageMemory(60.0)):
        left = remaining_s()
        assert left is not None and left <= 5.0


def _call_after_the_budget(memory: OutageMemory) -> None:
    with budget(memory):
        _sent(Details("/BatchGetDocuments", 60.0))


def test_a_spent_budget_refuses_the_next_attempt_and_shortens_the_next_calls() -> None:
    memory = OutageMemory(0.0)  # spent at once, as if a stalled RPC had used it all
    with pytest.raises(BudgetSpent):
        _call_after_the_budget(memory)
    assert memory.budget_s() == 0.0  # never more than the full budget
    longer = OutageMemory(10.0)
    longer.spent()
    assert longer.budget_s() == DOWN_BUDGET_S
    with budget(longer):
        pass  # Firestore answered again
    assert longer.budget_s() == 10.0
