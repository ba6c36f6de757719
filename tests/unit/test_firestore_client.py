"""The store's Firestore client builds its intercepted transport once, on a channel
that reads streamed answers on the calling thread.

The library asks the client for its API object on every RPC; the wrapper that adds
our interceptors must not make a new transport class on each ask.
"""

from __future__ import annotations

import gc
from typing import Any

import google.auth
import pytest
from google.api_core import grpc_helpers
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore_v1.services.firestore.transports.grpc import (
    FirestoreGrpcTransport,
)

from services.store.firestore_client import STREAM_OPTION, open_client
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


def test_productions_channel_reads_streams_on_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Away from the emulator the library builds a secure channel through the transport;
    ours adds STREAM_OPTION to the library's options (no RPC is sent, nothing dials)."""
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(
        google.auth,
        "default",
        lambda *a, **k: (AnonymousCredentials(), "demo-client"),  # type: ignore[no-untyped-call]
    )
    seen: list[list[tuple[str, object]]] = []
    create = grpc_helpers.create_channel

    def spied(*args: Any, **kwargs: Any) -> Any:
        seen.append(list(kwargs.get("options", ())))
        return create(*args, **kwargs)

    monkeypatch.setattr(grpc_helpers, "create_channel", spied)
    client = open_client("demo-client")
    try:
        assert client._firestore_api is not None
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert len(seen) == 1
    assert STREAM_OPTION in seen[0]
    assert ("grpc.max_receive_message_length", -1) in seen[0]  # the library's own kept
