"""A Firestore client whose gRPC channel runs through our interceptors.

The library builds its channel itself (a secure one, or an insecure one for the
emulator) and takes no interceptors, so the transport class it is handed is
wrapped to intercept whichever channel it gets. Every client of the store has
the deadline interceptor; the RPC bench adds a counting one.

The same wrapper caps the library's sleep between retries at ``MAX_BACKOFF_S``.
Its default ceiling grows to 60 s, so against a refused Firestore a sleep begun
inside a call's 10 s budget could end seconds past it (a webhook's 503 once came
after 15.7 s); now a call ends at most one short sleep after its budget.

Both channels (the emulator's and production's) also carry ``STREAM_OPTION``. A
batched read or a query is a unary-stream RPC, and by default gRPC starts a thread
for each one, which hands every answer to the caller across the interpreter lock.
With the option the calling thread reads its own answers: in process, a paid
event's client CPU fell from 3.24 to 2.18 ms and a balance read's from 1.24 to 0.55
(``bench.rpc_bench``); under gunicorn's threads the webhook's CPU per event fell by
about 5%, since there a busy channel keeps its thread anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api_core import gapic_v1
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_client import _GRPC_MSG_SIZE_OPTIONS
from google.cloud.firestore_v1.types import firestore as firestore_types

from services.store.firestore_deadline import DeadlineInterceptor
from services.store.firestore_reads import snapshot
from services.store.firestore_rpc import BatchGetRequest, direct_rpcs

MAX_BACKOFF_S = 1.0
STREAM_OPTION = (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)


def _cap_backoff(wrapped_methods: dict[Any, Any]) -> None:
    """Each RPC's default retry, with its sleeps capped at MAX_BACKOFF_S."""
    for method in wrapped_methods.values():
        retry = getattr(method, "_retry", None)  # api_core's _GapicCallable
        if isinstance(retry, Retry):
            method._retry = retry.with_delay(maximum=MAX_BACKOFF_S)


class _InterceptedClient(firestore.Client):
    def __init__(self, project: str, interceptors: tuple[Any, ...]) -> None:
        super().__init__(project=project)
        self._interceptors = interceptors
        # The library builds its API object on first use without a lock; threads racing
        # there each made a channel, and one freed while its call read closed that call.
        self._api_lock = threading.Lock()

    def _emulator_channel(self, transport: Any) -> grpc.Channel:
        # The library's emulator channel (insecure, its bearer token, its message
        # sizes), with STREAM_OPTION; it only serves the emulator, so the sync one.
        token = getattr(self._credentials, "id_token", None) or "owner"
        options = [("Authorization", f"Bearer {token}"), *_GRPC_MSG_SIZE_OPTIONS, STREAM_OPTION]
        return grpc.insecure_channel(self._emulator_host, options=options)

    def get_all(  # type: ignore[override]
        self,
        references: list[Any],
        field_paths: Any = None,
        transaction: Any = None,
        retry: Any = gapic_v1.method.DEFAULT,
        timeout: float | None = None,
        *,
        read_time: Any = None,
    ) -> Iterator[Any]:
        # The library's get_all (a transaction's reads come here too), sent by
        # firestore_rpc and its answers parsed from their protobufs by firestore_reads:
        # the same snapshots, less CPU.
        request, references_by_path, _ = self._prep_get_all(
            references, field_paths, transaction, retry, timeout, read_time
        )
        for answer in direct_rpcs(self).batch_get(_request_pb(request), retry, timeout):
            yield snapshot(answer, references_by_path, self)

    def _firestore_api_helper(self, transport: Any, client_class: Any, client_module: Any) -> Any:
        # The library asks for its API object on every RPC and builds it once: the
        # wrapping class is made only for that first build, not on each call.
        if self._firestore_api_internal is not None:
            return self._firestore_api_internal
        with self._api_lock:
            if self._firestore_api_internal is None:  # no other thread built it meanwhile
                self._build_api(transport, client_class, client_module)
        return self._firestore_api_internal

    def _build_api(self, transport: Any, client_class: Any, client_module: Any) -> Any:
        interceptors = self._interceptors

        class Intercepted(transport):  # type: ignore[misc]
            @classmethod
            def create_channel(cls, *args: Any, **kwargs: Any) -> grpc.Channel:
                # Production's channel: the library's options and STREAM_OPTION.
                kwargs["options"] = [*kwargs.get("options", ()), STREAM_OPTION]
                return super().create_channel(*args, **kwargs)

            def __init__(self, *, host: str, channel: grpc.Channel, **kwargs: Any) -> None:
                channel = grpc.intercept_channel(channel, *interceptors)
                super().__init__(host=host, channel=channel, **kwargs)
                _cap_backoff(self._wrapped_methods)

        Intercepted.__name__ = transport.__name__  # the emulator branch looks at the name
        return super()._firestore_api_helper(Intercepted, client_class, client_module)


def _request_pb(request: dict[str, Any]) -> Any:
    """The library's request as a protobuf: built directly when it names documents (and a
    transaction) only; through proto-plus with a mask or a read time."""
    if request.get("mask") is None and "read_time" not in request:
        built = BatchGetRequest(database=request["database"], documents=request["documents"])
        if request.get("transaction"):  # one of a oneof: set only when there is one
            built.transaction = request["transaction"]
        return built
    return firestore_types.BatchGetDocumentsRequest(request)._pb


def open_client(project: str, *extra: Any) -> firestore.Client:
    """A client for ``project`` with the deadline interceptor, then ``extra`` ones."""
    return _InterceptedClient(project, (DeadlineInterceptor(), *extra))
