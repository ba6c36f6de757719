"""A new Firestore client shared by threads from its first call, as a served worker's is.

The library builds its API object (transport and gRPC channel) on first use, without a
lock: threads that raced there each made a channel, and the one kept was the last
made. A channel that lost the race was freed when its thread's call ended, or, while
that call was still reading, closed it: "499 Stream removed (Channel deallocated!)",
a 503 on one of the storm test's concurrent sign-ins on a fresh server. Here making a
channel takes 50 ms (production's, with credentials and TLS, takes longer), so that
every first call races; one channel must be made, and every read answered.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from services.store import firestore_client
from services.store.firestore_client import open_client
from tests.support.firestore_emulator import FirestoreEmulator

THREADS = 8
CHANNEL_S = 0.05


@pytest.fixture
def channels_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every channel a client makes from now on, each taking CHANNEL_S to make."""
    made: list[Any] = []
    make = firestore_client._InterceptedClient._emulator_channel

    def slowly(client: Any, transport: Any) -> Any:
        time.sleep(CHANNEL_S)
        made.append(make(client, transport))
        return made[-1]

    monkeypatch.setattr(firestore_client._InterceptedClient, "_emulator_channel", slowly)
    return made


def test_threads_on_a_new_client_share_one_channel(
    firestore_emulator: FirestoreEmulator, channels_made: list[Any]
) -> None:
    client = open_client("demo-client-threads")
    start = threading.Barrier(THREADS)

    def read(n: int) -> bool:
        start.wait()
        (snap,) = client.get_all([client.document(f"accounts/u-{n}")])
        return bool(snap.exists)

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            assert list(pool.map(read, range(THREADS))) == [False] * THREADS
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert len(channels_made) == 1
