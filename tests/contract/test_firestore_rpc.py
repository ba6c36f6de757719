"""The store's direct BatchGetDocuments and Commit (services/store/firestore_rpc.py) put
on the wire what the library's generated client puts there, on the emulator.

An interceptor on the client's channel records each call's method, request, metadata
and timeout; each case makes the same call once through the library and once
directly, and the two records must agree: the same request, the same metadata (the
resource prefix, the routing header, the library's x-goog-api-client), the same
timeout for each attempt. The answers and the errors must agree as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import grpc  # type: ignore[import-untyped]
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.types import common
from google.cloud.firestore_v1.types import firestore as firestore_types

from services.store.firestore_client import open_client
from services.store.firestore_rpc import BatchGetRequest, CommitRequest, direct_rpcs
from services.store.firestore_writes import set_write
from tests.support.firestore_emulator import FirestoreEmulator

PROJECT = "demo-direct-rpcs"
TIMEOUT_SLACK_S = 1.0  # the library counts an attempt's timeout down from its start


class Sent(NamedTuple):
    method: str
    request: Any  # the protobuf, whichever form the caller gave
    metadata: tuple[Any, ...]
    timeout: float | None


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def _record(self, continuation: Any, details: Any, request: Any) -> Any:
        pb = request if not hasattr(type(request), "pb") else type(request).pb(request)
        self.sent.append(Sent(details.method, pb, tuple(details.metadata or ()), details.timeout))
        return continuation(details, request)

    intercept_unary_unary = _record
    intercept_unary_stream = _record


@pytest.fixture
def recorded(firestore_emulator: FirestoreEmulator) -> Iterator[tuple[Any, Recorder]]:
    recorder = Recorder()
    client = open_client(PROJECT, recorder)
    yield client, recorder
    client.close()  # type: ignore[no-untyped-call]


def last_two(recorder: Recorder, direct_first: bool = False) -> tuple[Sent, Sent]:
    """The library's call and the direct one, the last two recorded."""
    first, second = recorder.sent[-2:]
    return (second, first) if direct_first else (first, second)


def assert_same_call(library: Sent, direct: Sent, default_timeout: float) -> None:
    assert direct.method == library.method
    assert direct.request == library.request
    assert direct.metadata == library.metadata
    assert library.timeout is not None and direct.timeout is not None
    assert abs(direct.timeout - default_timeout) <= TIMEOUT_SLACK_S
    assert abs(library.timeout - default_timeout) <= TIMEOUT_SLACK_S


def documents(client: firestore.Client, count: int) -> list[Any]:
    collection = client.collection("direct").document(uuid.uuid4().hex).collection("docs")
    refs = [collection.document(f"d{i}") for i in range(count)]
    batch = client.batch()
    batch.set(refs[0], {"n": 1, "name": "first", "tags": ["a", "b"]})
    batch.commit()
    return refs


def test_a_batched_read_is_the_librarys_on_the_wire(recorded: tuple[Any, Recorder]) -> None:
    client, recorder = recorded
    refs = documents(client, 3)
    ours = list(client.get_all(refs))
    library = list(firestore.Client.get_all(client, refs))
    assert_same_call(*last_two(recorder, direct_first=True), 300.0)
    assert [(s.reference.path, s.exists, s.to_dict()) for s in ours] == [
        (s.reference.path, s.exists, s.to_dict()) for s in library
    ]
    assert [s.update_time for s in ours] == [s.update_time for s in library]


def test_reads_in_a_transaction_masked_or_at_a_time_are_the_librarys_too(
    recorded: tuple[Any, Recorder],
) -> None:
    client, recorder = recorded
    refs = documents(client, 2)
    transaction = client.transaction()
    transaction._begin()
    list(client.get_all(refs, transaction=transaction))
    list(firestore.Client.get_all(client, refs, transaction=transaction))
    assert_same_call(*last_two(recorder, direct_first=True), 300.0)
    transaction._rollback()
    list(client.get_all(refs, field_paths=["name"]))
    list(firestore.Client.get_all(client, refs, field_paths=["name"]))
    assert_same_call(*last_two(recorder, direct_first=True), 300.0)
    at = next(iter(client.get_all(refs[:1]))).update_time
    ours = [s.to_dict() for s in client.get_all(refs, read_time=at)]
    library = [s.to_dict() for s in firestore.Client.get_all(client, refs, read_time=at)]
    assert_same_call(*last_two(recorder, direct_first=True), 300.0)
    assert ours == library


def test_a_read_beginning_a_transaction_is_the_librarys_on_the_wire(
    recorded: tuple[Any, Recorder],
) -> None:
    client, recorder = recorded
    refs = documents(client, 2)
    options = common.TransactionOptions(read_write=common.TransactionOptions.ReadWrite())
    paths = [ref._document_path for ref in refs]
    library = list(
        client._firestore_api.batch_get_documents(
            request={
                "database": client._database_string,
                "documents": paths,
                "new_transaction": options,
            },
            metadata=client._rpc_metadata,
        )
    )
    request = BatchGetRequest(
        database=client._database_string,
        documents=paths,
        new_transaction=common.TransactionOptions.pb(options),
    )
    direct = list(direct_rpcs(client).batch_get(request))
    assert_same_call(*last_two(recorder), 300.0)
    assert direct[0].transaction and library[0].transaction  # each began one
    assert [a.WhichOneof("result") for a in direct] == [
        firestore_types.BatchGetDocumentsResponse.pb(a).WhichOneof("result") for a in library
    ]
    for began in (direct[0].transaction, library[0].transaction):
        client._firestore_api.rollback(
            request={"database": client._database_string, "transaction": began},
            metadata=client._rpc_metadata,
        )


def test_a_commit_is_the_librarys_on_the_wire(recorded: tuple[Any, Recorder]) -> None:
    client, recorder = recorded
    (ref,) = documents(client, 1)
    write = set_write(ref._document_path, {"n": 2, "name": "second"}, False)
    library = client._firestore_api.commit(
        request={"database": client._database_string, "writes": [write]},
        metadata=client._rpc_metadata,
    )
    direct = direct_rpcs(client).commit(
        CommitRequest(database=client._database_string, writes=[type(write).pb(write)])
    )
    assert_same_call(*last_two(recorder), 60.0)
    assert len(direct.write_results) == len(library.write_results) == 1
    assert direct.commit_time > library.commit_time  # the library's, as a datetime
    assert (ref.get().to_dict() or {})["n"] == 2


def test_errors_are_the_librarys_errors(recorded: tuple[Any, Recorder]) -> None:
    client, _ = recorded
    (ref,) = documents(client, 1)
    write = set_write(ref._document_path, {"n": 3}, False)
    bogus = b"not a transaction"
    with pytest.raises(gexc.InvalidArgument) as from_library:
        client._firestore_api.commit(
            request={"database": client._database_string, "writes": [write], "transaction": bogus},
            metadata=client._rpc_metadata,
        )
    request = CommitRequest(
        database=client._database_string, writes=[type(write).pb(write)], transaction=bogus
    )
    with pytest.raises(gexc.InvalidArgument) as from_direct:
        direct_rpcs(client).commit(request)
    assert from_direct.value.code == from_library.value.code
    read = BatchGetRequest(database=client._database_string, documents=[ref._document_path])
    read.transaction = bogus
    with pytest.raises(gexc.InvalidArgument):
        list(direct_rpcs(client).batch_get(read))
