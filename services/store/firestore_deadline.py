"""One time budget for each Firestore call, retries included.

The client library retries reads for up to 300 s and writes for 60 s, each
attempt with its own timeout, so an unreachable Firestore held a request for
minutes. Here a store call opens a budget (``budget``) and a gRPC client
interceptor, installed on the client's channel, clips every RPC made inside it
to the time left; once the budget is spent it refuses the next attempt with
``BudgetSpent``, which no retry loop of the library catches, so the call ends
and the store answers StorageUnavailable (HTTP 503 with Retry-After).

After a call has spent its whole budget, Firestore is presumably down: calls in
the next ``DOWN_WINDOW_S`` get the short ``DOWN_BUDGET_S`` instead, so that a
request which reports the failure (an event failure record) or reads again
still ends soon after the first budget. The first call that succeeds ends that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc

# Every call to Firestore ends within this, its retries included: an unreachable
# Firestore is a 503 within seconds, never a hang.
CALL_BUDGET_S = 10.0
CALL_TIMEOUT_S = CALL_BUDGET_S  # the client library's own deadline for a call, retries included
DOWN_BUDGET_S = 1.0
DOWN_WINDOW_S = 30.0
_deadline: ContextVar[float | None] = ContextVar("firestore_deadline", default=None)
# Whether Firestore answered any RPC within the current budget: a budget spent
# waiting on a contended document is no outage, and must not shorten other calls.
_answered: ContextVar[list[bool] | None] = ContextVar("firestore_answered", default=None)


class BudgetSpent(gexc.GoogleAPIError):
    """The call's time budget ran out. Not a GoogleAPICallError: the library's retry
    predicates (by exception type) let it through at once."""


class OutageMemory:
    """Whether a call recently spent its whole budget; shared by the store's threads."""

    def __init__(self, budget_s: float) -> None:
        self.full_budget_s = budget_s
        self._lock = threading.Lock()
        self._down_until = 0.0

    def budget_s(self) -> float:
        with self._lock:
            down = time.monotonic() < self._down_until
        return min(DOWN_BUDGET_S, self.full_budget_s) if down else self.full_budget_s

    def spent(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + DOWN_WINDOW_S

    def answered(self) -> None:
        with self._lock:
            self._down_until = 0.0


@contextmanager
def budget(memory: OutageMemory) -> Iterator[None]:
    """Give the Firestore calls inside one budget; a call nested in another shares the
    outer one, so a transaction's retries never start a fresh budget."""
    if _deadline.get() is not None:
        yield
        return
    token = _deadline.set(time.monotonic() + memory.budget_s())
    answered: list[bool] = []
    answered_token = _answered.set(answered)
    try:
        yield
    except BaseException:
        left = remaining_s()
        if left is not None and left <= 0 and not answered:  # nothing answered: down
            memory.spent()
        raise
    else:
        memory.answered()
    finally:
        _answered.reset(answered_token)
        _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left in the current budget; None outside one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def _clipped(details: Any) -> Any:
    left = remaining_s()
    if left is None:
        return details
    if left <= 0:
        raise BudgetSpent(f"Firestore did not answer within the call's budget ({details.method})")
    timeout = left if details.timeout is None else min(details.timeout, left)
    return _Details(
        details.method,
        timeout,
        details.metadata,
        details.credentials,
        details.wait_for_ready,
        details.compression,
    )


class DeadlineInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Clips each RPC's timeout to the current budget (see the module docstring)."""

    def _call(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        outcome = continuation(_clipped(details), request)
        # A blocking unary call has finished here; streams answer later and are not counted.
        if isinstance(outcome, grpc.Future) and outcome.done() and outcome.exception() is None:
            answered = _answered.get()
            if answered is not None:
                answered.append(True)
        return outcome

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call
