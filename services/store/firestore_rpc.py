"""A store's batched reads and commits, sent as protobufs on the client's own channel.

The library sends every RPC through its generated (GAPIC) layer: the request is
built as a proto-plus message, the call wrapped anew each time in retry and
timeout decorators, the metadata merged, and each answer wrapped in proto-plus
again. For a commit or a batched read against the emulator that layer cost 80 to
115 µs of the call's 280 to 310 µs of client CPU (a loop of 1,500 calls each way),
and a paid event makes three such calls.

``DirectRpcs`` makes the two calls every unit of work makes, BatchGetDocuments and
Commit, with the same wire request, on the same channel (so the deadline and
counting interceptors see them), with the metadata the library's own wrapper
computes for them, under the library's own default retry for the method (with the
client's capped backoff), and with gRPC errors raised as the library raises them
(``google.api_core.exceptions``). A stream is retried, as the library's is, only
until its first answer. The metadata, retry and timeout are read from the
library's wrapped methods (private parts of the pinned versions), so
tests/contract/test_firestore_rpc.py compares what goes on the wire both ways,
and fails if an upgrade makes them differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.cloud.firestore_v1.types import firestore as firestore_types

BATCH_GET = "/google.firestore.v1.Firestore/BatchGetDocuments"
COMMIT = "/google.firestore.v1.Firestore/Commit"
BatchGetRequest = firestore_types.BatchGetDocumentsRequest.pb()
CommitRequest = firestore_types.CommitRequest.pb()
BatchGetAnswer = firestore_types.BatchGetDocumentsResponse.pb()
CommitAnswer = firestore_types.CommitResponse.pb()
STREAMS = frozenset({"batch_get_documents"})  # the library's names of unary-stream RPCs


def _serialized(request: Any) -> bytes:
    return request.SerializeToString()  # type: ignore[no-any-return]


def _raised(exc: grpc.RpcError) -> gexc.GoogleAPICallError:
    return gexc.from_grpc_error(exc)  # type: ignore[no-untyped-call,no-any-return]


def _answers(stream: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from stream
    except grpc.RpcError as exc:
        raise _raised(exc) from exc


class _Method:
    """One RPC on the channel, with the library's metadata, timeout and retry for it."""

    def __init__(
        self, api: Any, name: str, path: str, answer: Any, metadata: tuple[Any, ...]
    ) -> None:
        transport = api._transport
        gapic = transport._wrapped_methods[getattr(transport, name)]
        channel = transport.grpc_channel
        make = channel.unary_stream if name in STREAMS else channel.unary_unary
        self.stub = make(
            path, request_serializer=_serialized, response_deserializer=answer.FromString
        )
        self.retry = gapic._retry
        default = gapic._timeout  # seconds for each attempt, as the library's wrapper has it
        self.timeout = float(default) if isinstance(default, int | float) else None
        self.metadata = library_metadata(gapic, metadata)

    def call(self, attempt: Callable[[float | None], Any], retry: Any, timeout: Any) -> Any:
        """``attempt(timeout)``, retried as the library would; gRPC errors as its own."""
        seconds = self.timeout if timeout is None else timeout

        def once() -> Any:
            try:
                return attempt(seconds)
            except grpc.RpcError as exc:
                raise _raised(exc) from exc

        chosen = self.retry if retry is gapic_v1.method.DEFAULT else retry
        return once() if chosen is None else chosen(once)()


def library_metadata(gapic: Any, metadata: tuple[Any, ...]) -> tuple[Any, ...]:
    """The metadata the library's wrapped method sends with ``metadata`` given."""
    kwargs: dict[str, Any] = {"metadata": metadata}
    gapic._prepare_call(None, None, None, kwargs)
    return tuple(kwargs["metadata"])


class DirectRpcs:
    """BatchGetDocuments and Commit for one client (see the module docstring)."""

    def __init__(self, client: Any, api: Any) -> None:
        routing = gapic_v1.routing_header.to_grpc_metadata(  # type: ignore[no-untyped-call]
            (("database", client._database_string),)
        )
        metadata = (*client._rpc_metadata, routing)
        self._batch_get = _Method(api, "batch_get_documents", BATCH_GET, BatchGetAnswer, metadata)
        self._commit = _Method(api, "commit", COMMIT, CommitAnswer, metadata)

    def batch_get(
        self, request: Any, retry: Any = gapic_v1.method.DEFAULT, timeout: Any = None
    ) -> Iterator[Any]:
        """The answers' protobufs; the call is retried only until its first answer."""
        method = self._batch_get

        def start(seconds: float | None) -> tuple[Iterator[Any], list[Any]]:
            stream = method.stub(request, metadata=method.metadata, timeout=seconds)
            return stream, [answer for answer in [next(stream, None)] if answer is not None]

        stream, first = method.call(start, retry, timeout)
        yield from first
        if first:
            yield from _answers(stream)

    def commit(self, request: Any, retry: Any = gapic_v1.method.DEFAULT) -> Any:
        """The CommitResponse, in proto-plus as the library gives it (wrapped, not copied)."""
        method = self._commit
        answer = method.call(
            lambda seconds: method.stub(request, metadata=method.metadata, timeout=seconds),
            retry,
            None,
        )
        return firestore_types.CommitResponse.wrap(answer)


def direct_rpcs(client: Any) -> DirectRpcs:
    """``client``'s DirectRpcs, made on its first use (two threads racing there make
    two alike, and one is kept)."""
    rpcs: DirectRpcs | None = getattr(client, "_direct_rpcs", None)
    if rpcs is None:
        rpcs = DirectRpcs(client, client._firestore_api)
        client._direct_rpcs = rpcs
    return rpcs
