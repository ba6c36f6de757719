"""A Firestore that refuses connections ends a store call close to its budget.

The library sleeps between retries of an unavailable Firestore, each sleep drawn up
to a ceiling that grows 1.3x per attempt up to 60 s. A sleep that starts inside the
budget can end seconds past it: a webhook once took 15.7 s to answer its 503 against
a 10 s budget. The store's client caps that ceiling, so a call ends at most one
short sleep after its budget.
"""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from services.errors import StorageUnavailable
from services.store.firestore import FirestoreStore
from services.store.firestore_client import MAX_BACKOFF_S, open_client
from services.store.firestore_deadline import CALL_BUDGET_S
from services.store.port import Store
from tests.support.firestore_emulator import free_port

SLACK_S = 0.5  # thread scheduling on a busy machine


class AttemptTimes(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """When each RPC attempt starts."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def _record(self, continuation: Any, details: Any, request: Any) -> Any:
        self.starts.append(time.monotonic())
        return continuation(details, request)

    intercept_unary_unary = _record
    intercept_unary_stream = _record


def test_a_refused_firestore_is_retried_at_short_intervals_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nobody there
    attempts = AttemptTimes()
    store: Store = FirestoreStore("demo-backoff", client=open_client("demo-backoff", attempts))
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.event_outcome("evt_refused")
    took = time.monotonic() - started
    gaps = [later - earlier for earlier, later in pairwise(attempts.starts)]
    assert len(gaps) > 5, attempts.starts  # it did retry
    assert max(gaps) <= MAX_BACKOFF_S + SLACK_S, gaps
    assert took <= CALL_BUDGET_S + MAX_BACKOFF_S + SLACK_S, took
