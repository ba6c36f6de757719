"""Each thread of a served worker makes its Firestore calls on a channel of its own.

Threads that shared one channel queued for its condition on every call
(services/store/firestore_channels.py). Here eight threads read through one store
client on the emulator at once: every read is answered, each thread's calls go
through one channel, no two threads share one, and a ninth thread shares.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from services.store.firestore_channels import CHANNELS, ThreadChannels
from services.store.firestore_client import open_client
from tests.support.firestore_emulator import FirestoreEmulator, free_port


def _spy_on(pool: ThreadChannels, used: dict[str, set[int]]) -> None:
    """Record, per thread, the channels its streamed calls (batched reads) are made on."""
    for index, channel in enumerate(pool.channels):
        make = channel.unary_stream

        def spied(*args: Any, _index: int = index, _make: Any = make, **kwargs: Any) -> Any:
            used[threading.current_thread().name].add(_index)
            return _make(*args, **kwargs)

        channel.unary_stream = spied


def _pool(client: Any) -> ThreadChannels:
    channel = client._firestore_api._transport.grpc_channel
    while not isinstance(channel, ThreadChannels):  # under the interceptors' channels
        channel = channel._channel
    return channel


@pytest.fixture
def client(firestore_emulator: FirestoreEmulator) -> Any:
    made = open_client("demo-thread-channels")
    yield made
    made.close()  # type: ignore[no-untyped-call]


def test_each_thread_reads_on_a_channel_of_its_own(client: Any) -> None:
    used: dict[str, set[int]] = defaultdict(set)
    _spy_on(_pool(client), used)
    start = threading.Barrier(CHANNELS)

    def read(n: int) -> list[bool]:
        start.wait()  # every thread busy at once, so each is a thread of its own
        return [
            bool(snap.exists)
            for _ in range(3)
            for snap in client.get_all([client.document(f"accounts/u-{n}")])
        ]

    with ThreadPoolExecutor(CHANNELS) as pool:
        assert list(pool.map(read, range(CHANNELS))) == [[False] * 3] * CHANNELS
    assert len(used) == CHANNELS
    assert all(len(channels) == 1 for channels in used.values())  # a thread keeps its own
    assert set().union(*used.values()) == set(range(CHANNELS))  # no two share

    extra = threading.Thread(
        target=lambda: list(client.get_all([client.document("a/b")])), name="ninth"
    )
    extra.start()
    extra.join()
    assert len(used) == CHANNELS + 1
    assert len(used["ninth"]) == 1  # beyond CHANNELS threads, threads share


def test_closing_closes_every_channel() -> None:
    # Nothing listens there: a channel connects on its first call, and none is made.
    pool = ThreadChannels(lambda: grpc.insecure_channel(f"127.0.0.1:{free_port()}"), count=3)
    pool.close()
    for channel in pool.channels:
        with pytest.raises(ValueError, match="closed"):
            channel.unary_unary("/google.firestore.v1.Firestore/Commit")(b"")
