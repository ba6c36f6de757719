"""The store's own snapshots of a batched read's answers are the library's.

``services.store.firestore_reads.snapshot`` parses a BatchGetDocumentsResponse from its
raw protobuf; for any document (or a missing one) it must give the snapshot
``google-cloud-firestore``'s ``_parse_batch_get`` gives: the same reference, times and
data, each value of the same type.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_client import _parse_batch_get
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.types import document
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.cloud.firestore_v1.vector import Vector
from google.protobuf import timestamp_pb2  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from services.store.firestore_reads import snapshot
from tests.support.firestore_values import FIELD_NAMES, SCALARS

# With the wire names of vectors and BSON values, which the library decodes its own way.
NAMES = FIELD_NAMES | st.sampled_from(["__type__", "__oid__", "__int__", "value"])
ALL_SCALARS = st.one_of(
    SCALARS,
    st.binary(max_size=6),
    st.builds(firestore.GeoPoint, st.floats(-90, 90), st.floats(-180, 180)),
)
VALUES = st.recursive(
    ALL_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(NAMES, inner, max_size=4),
        st.builds(lambda n: {"__type__": "__vector__", "value": n}, st.lists(st.floats(-9, 9))),
    ),
    max_leaves=12,
)
TIMES = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.integers(0, 2**33),
    nanos=st.integers(0, 999_999_999),
)


@pytest.fixture(scope="module")
def client() -> firestore.Client:
    os.environ.setdefault("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # never dialled
    return firestore.Client(project="demo-reads")


def typed(value: Any) -> Any:
    """``value`` with the type of everything in it, so that 1 and 1.0 differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, Vector):
        return ("Vector", list(value))
    if isinstance(value, DocumentReference):
        return ("DocumentReference", value.path)
    return (type(value).__name__, repr(value))


def same(ours: Any, theirs: Any) -> None:
    assert ours.reference is theirs.reference
    assert ours.exists == theirs.exists
    assert typed(ours.to_dict()) == typed(theirs.to_dict())
    for moment in ("read_time", "create_time", "update_time"):
        mine, library = getattr(ours, moment), getattr(theirs, moment)
        assert (type(mine), mine) == (type(library), library), moment


def answer_for(data: dict[str, Any] | None, times: list[Any], path: str) -> Any:
    read, created, updated = times
    if data is None:
        return firestore_types.BatchGetDocumentsResponse(missing=path, read_time=read)
    fields = _helpers.encode_dict(data)
    found = document.Document(name=path, fields=fields, create_time=created, update_time=updated)
    return firestore_types.BatchGetDocumentsResponse(found=found, read_time=read)


@given(
    st.none() | st.dictionaries(NAMES, VALUES, max_size=8),
    st.lists(TIMES, min_size=3, max_size=3),
)
def test_a_snapshot_is_the_librarys_own(
    client: firestore.Client, data: dict[str, Any] | None, times: list[Any]
) -> None:
    ref = client.document("accounts/u-1")
    references = {ref._document_path: ref}
    answer = answer_for(data, times, ref._document_path)
    same(snapshot(answer._pb, references, client), _parse_batch_get(answer, references, client))


def test_references_decode_to_documents(client: firestore.Client) -> None:
    ref = client.document("purchases/p-1")
    data = {"owner": client.document("accounts/u-1"), "at": datetime(2026, 12, 6, tzinfo=UTC)}
    references = {ref._document_path: ref}
    stamp = timestamp_pb2.Timestamp(seconds=1, nanos=2)
    answer = answer_for(data, [stamp, stamp, stamp], ref._document_path)
    ours = snapshot(answer._pb, references, client)
    same(ours, _parse_batch_get(answer, references, client))
    assert ours.get("owner").path == "accounts/u-1"


def test_an_answer_for_a_document_not_asked_for_is_refused(client: firestore.Client) -> None:
    asked = client.document("accounts/u-1")
    stamp = timestamp_pb2.Timestamp(seconds=1)
    answer = answer_for({}, [stamp, stamp, stamp], client.document("accounts/u-2")._document_path)
    with pytest.raises(ValueError, match="not present among references"):
        snapshot(answer._pb, {asked._document_path: asked}, client)


def test_an_empty_answer_is_refused_as_the_library_refuses_it(client: firestore.Client) -> None:
    empty = firestore_types.BatchGetDocumentsResponse()
    with pytest.raises(ValueError, match="had a field other than"):
        snapshot(empty._pb, {}, client)
