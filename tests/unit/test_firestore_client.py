"""The store's Firestore client builds its intercepted transport once.

The library asks the client for its API object on every RPC; the wrapper that adds
our interceptors must not make a new transport class on each ask.
"""

from __future__ import annotations

import gc

import pytest
from google.cloud.firestore_v1.services.firestore.transports.grpc import (
    FirestoreGrpcTransport,
)

from services.store.firestore_client import open_client
from tests.support.firestore_emulator import free_port


def test_asking_for_the_api_again_makes_no_new_transport_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No RPC is sent: a channel connects on its first call, so nothing need listen here.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    client = open_client("demo-client")
    first = client._firestore_api
    gc.disable()  # a class left behind lives until a collection: keep it countable
    try:
        before = len(FirestoreGrpcTransport.__subclasses__())
        again = [client._firestore_api for _ in range(10)]
        made = len(FirestoreGrpcTransport.__subclasses__()) - before
    finally:
        gc.enable()
        client.close()  # type: ignore[no-untyped-call]
    assert all(api is first for api in again)
    assert made == 0, f"{made} transport classes made by 10 asks"
