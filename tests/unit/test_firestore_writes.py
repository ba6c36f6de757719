"""The store's own create, set and update Writes are the library's, field for field.

``services.store.firestore_writes`` builds those Write protobufs without the
library's per-value wrappers; whatever document it is given, the Write must equal
the one ``google-cloud-firestore`` builds (or, where it hands the document back to
the library, be that very one), and a document the library refuses is refused alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write
from hypothesis import given
from hypothesis import strategies as st

from services.store.firestore_writes import create_write, set_write, update_write
from tests.support.firestore_values import FIELD_NAMES, SCALARS

PATH = "projects/demo/databases/(default)/documents/journal/t-1"
NAMES = FIELD_NAMES
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(NAMES, inner, max_size=4),
    ),
    max_leaves=12,
)
INCREMENTS = st.builds(
    firestore.Increment,
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=False)),
)
# Transforms only at the top, where the store writes them.
TOP = st.one_of(VALUES, st.just(firestore.SERVER_TIMESTAMP), INCREMENTS)
DOCUMENTS = st.dictionaries(NAMES, TOP, max_size=8)


def library(data: dict[str, Any]) -> Any:
    (pb,) = _helpers.pbs_for_create(PATH, data)
    return write.Write.pb(pb)


def librarys_set(data: dict[str, Any], merge: bool) -> Any:
    if merge:
        (pb,) = _helpers.pbs_for_set_with_merge(PATH, data, merge)
    else:
        (pb,) = _helpers.pbs_for_set_no_merge(PATH, data)
    return write.Write.pb(pb)


def librarys_update(data: dict[str, Any]) -> Any:
    (pb,) = _helpers.pbs_for_update(PATH, data, None)
    return write.Write.pb(pb)


def same_or_refused_alike(expected: Callable[[], Any], built: Callable[[], Any]) -> None:
    try:
        want = expected()
    except (TypeError, ValueError) as refused:  # an empty field name, say: refused alike
        with pytest.raises(type(refused), match=re.escape(str(refused))):
            built()
    else:
        assert write.Write.pb(built()) == want


@given(DOCUMENTS)
def test_a_create_is_the_librarys_own(data: dict[str, Any]) -> None:
    same_or_refused_alike(lambda: library(data), lambda: create_write(PATH, data))


@given(DOCUMENTS, st.booleans())
def test_a_set_with_or_without_merge_is_the_librarys_own(data: dict[str, Any], merge: bool) -> None:
    same_or_refused_alike(lambda: librarys_set(data, merge), lambda: set_write(PATH, data, merge))


@given(DOCUMENTS)
def test_an_update_is_the_librarys_own(data: dict[str, Any]) -> None:
    same_or_refused_alike(lambda: librarys_update(data), lambda: update_write(PATH, data))


def test_a_credit_to_a_shard_and_a_purchase_update() -> None:
    shard = {"user_id": "u-1", "balance": firestore.Increment(110), "count": firestore.Increment(1)}
    merged = write.Write.pb(set_write(PATH, shard, merge=True))
    assert merged == librarys_set(shard, merge=True)
    assert list(merged.update_mask.field_paths) == ["user_id"]
    assert [t.field_path for t in merged.update_transforms] == ["balance", "count"]
    assert not merged.HasField("current_document")
    changed = {"state": "paid", "updated_at": "2026-12-06T10:00:00Z", "refs": {"a": [1, 2]}}
    updated = write.Write.pb(update_write(PATH, changed))
    assert updated == librarys_update(changed)
    assert list(updated.update_mask.field_paths) == ["refs", "state", "updated_at"]
    assert updated.current_document.exists is True
    only = {"count": firestore.Increment(1)}  # no field but a transform: an empty mask, still sent
    assert write.Write.pb(set_write(PATH, only, merge=True)) == librarys_set(only, merge=True)
    assert write.Write.pb(update_write(PATH, only)) == librarys_update(only)


def test_a_journal_document_with_entries_and_a_commit_time() -> None:
    entry = {"id": "e-1", "amount": 110, "balance_after": None, "refs": {"purchase_id": "p"}}
    data = {
        "id": "t-1",
        "entries": [entry, {**entry, "amount": -110}],
        "expire_at": datetime(2027, 1, 1, tzinfo=UTC),
        "at": firestore.SERVER_TIMESTAMP,
    }
    built = write.Write.pb(create_write(PATH, data))
    assert built == library(data)
    assert [t.field_path for t in built.update_transforms] == ["at"]
    assert built.current_document.exists is False


@pytest.mark.parametrize(
    "data",
    [
        {"nested": {"at": firestore.SERVER_TIMESTAMP}},  # a transform below the top
        {"odd name": firestore.SERVER_TIMESTAMP},  # a field path that needs quoting
        {"gone": firestore.DELETE_FIELD},
        {"n": firestore.Maximum(1)},
    ],
)
def test_what_it_does_not_build_is_the_librarys_to_build_or_refuse(data: dict[str, Any]) -> None:
    try:
        expected = library(data)
    except (TypeError, ValueError) as refused:
        with pytest.raises(type(refused)):
            create_write(PATH, data)
    else:
        assert write.Write.pb(create_write(PATH, data)) == expected


@pytest.mark.parametrize(
    ("data", "merge"),
    [
        ({"a.b": 1}, True),  # a dotted name: a field path the mask must quote
        ({"nested": {"x": 1}}, True),  # a merge names the map's leaves
        ({"gone": firestore.DELETE_FIELD}, True),
        ({}, True),
        ({"odd name": 1, "n": firestore.Increment(2)}, True),
    ],
)
def test_what_a_set_does_not_build_is_the_librarys(data: dict[str, Any], merge: bool) -> None:
    same_or_refused_alike(lambda: librarys_set(data, merge), lambda: set_write(PATH, data, merge))


@pytest.mark.parametrize(
    "data",
    [{"a.b": 1}, {"a.b": 1, "a": 2}, {}, {"gone": firestore.DELETE_FIELD}, {"n": {"m": 1}}],
)
def test_what_an_update_does_not_build_is_the_librarys(data: dict[str, Any]) -> None:
    same_or_refused_alike(lambda: librarys_update(data), lambda: update_write(PATH, data))
