"""The store's own create Writes are the library's, field for field.

``services.store.firestore_writes`` builds a create's Write protobuf without the
library's per-value wrappers; whatever document it is given, the Write must equal
the one ``google-cloud-firestore`` builds (or, where it hands the document back to
the library, be that very one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write
from hypothesis import given
from hypothesis import strategies as st

from services.store.firestore_writes import create_write
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
# A server timestamp only at the top, where the store writes them.
TOP = st.one_of(VALUES, st.just(firestore.SERVER_TIMESTAMP))


def library(data: dict[str, Any]) -> Any:
    (pb,) = _helpers.pbs_for_create(PATH, data)
    return write.Write.pb(pb)


@given(st.dictionaries(NAMES, TOP, max_size=8))
def test_a_create_is_the_librarys_own(data: dict[str, Any]) -> None:
    try:
        expected = library(data)
    except ValueError as refused:  # an empty field name, say: refused alike
        with pytest.raises(ValueError, match=str(refused)):
            create_write(PATH, data)
    else:
        assert write.Write.pb(create_write(PATH, data)) == expected


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
        {"n": firestore.Increment(1)},
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
