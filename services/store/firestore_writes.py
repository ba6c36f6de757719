"""The store's Write protobufs, built without the library's per-value wrappers.

The library encodes a document through proto-plus: a wrapper object for every
value, each converted again into the protobuf underneath. For the documents a
paid event creates (its journal transaction, two entries, its event record) that
was most of the CPU its writes cost: a journal document took 183 µs and an entry
67 µs, against 48 and 13 µs built straight as protobufs. Its other two writes, the
purchase's changed fields (an update) and the credit's shard (a merge of two
increments), took 48 and 43 µs through the library's field-path extractors.

``create_write``, ``set_write`` and ``update_write`` build the same Write as the
library's ``pbs_for_create``, ``pbs_for_set_no_merge``/``pbs_for_set_with_merge``
(``merge=True``) and ``pbs_for_update`` (no write option) would, for the values the
store writes: None, bool, int, float and str, lists, tuples and dicts of them, and
``SERVER_TIMESTAMP`` or ``Increment`` on a top-level field with a plain name. Any
other value is encoded by the library's ``encode_value``; a document with another
transform, a transform elsewhere, a field name the API must quote where it names a
field path (a merge, an update), or a merge of a map, is handed to the library whole.
``tests/unit/test_firestore_writes.py`` checks, with generated documents, that every
Write equals the library's.
"""

from __future__ import annotations

import re
from typing import Any

from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.transforms import (
    SERVER_TIMESTAMP,
    Increment,
    Sentinel,
    _NumericValue,
    _ValueList,
)
from google.cloud.firestore_v1.types import common, document, write

_VALUE = document.Value.pb()
_MAP = document.MapValue.pb()
_ARRAY = document.ArrayValue.pb()
_DOCUMENT = document.Document.pb()
_WRITE = write.Write.pb()
_PRECONDITION = common.Precondition.pb()
_FIELD_TRANSFORM = write.DocumentTransform.FieldTransform.pb()
_REQUEST_TIME = int(write.DocumentTransform.FieldTransform.ServerValue.REQUEST_TIME)
# A field name the API takes unquoted (the library's FieldPath rule).
_PLAIN_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_TRANSFORMS = (Sentinel, _NumericValue, _ValueList)
# Exact types only: a subclass (a str enum, say) is the library's to encode.
_SCALARS = {str: "string_value", int: "integer_value", bool: "boolean_value", float: "double_value"}


class _LibrarysToBuild(Exception):
    """A document with a transform this module does not build."""


def _value(value: Any, named: bool = False) -> Any:
    """``named``: a value reached through field names alone, whose own names the
    library checks (in an array it checks none)."""
    kind = type(value)
    field = _SCALARS.get(kind)
    if field is not None:
        return _VALUE(**{field: value})
    if value is None:
        return _VALUE(null_value=0)
    if kind is dict:
        return _VALUE(map_value=_MAP(fields=_fields(value, named)))
    if kind is list or kind is tuple:
        return _VALUE(array_value=_ARRAY(values=[_value(item) for item in value]))
    if isinstance(value, _TRANSFORMS):
        raise _LibrarysToBuild
    return document.Value.pb(_helpers.encode_value(value))


def _fields(data: dict[str, Any], named: bool) -> dict[str, Any]:
    if named and not all(data):
        raise ValueError("One or more components is not a string or is empty.")  # as the library
    return {key: _value(value, named) for key, value in data.items()}


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plain fields, and the top-level transforms built here, by name."""
    plain, transformed = {}, {}
    for key, value in data.items():
        if value is SERVER_TIMESTAMP or type(value) is Increment:
            if not _PLAIN_NAME.fullmatch(key):
                raise _LibrarysToBuild
            transformed[key] = value
        else:
            plain[key] = value
    return plain, transformed


def _transform(name: str, value: Any) -> Any:
    if value is SERVER_TIMESTAMP:
        return _FIELD_TRANSFORM(field_path=name, set_to_server_value=_REQUEST_TIME)
    return _FIELD_TRANSFORM(field_path=name, increment=_value(value.value))


def _build(path: str, data: dict[str, Any], exists: bool | None, masked: bool) -> write.Write:
    """The Write setting ``data`` on ``path``; ``masked``: only its own top-level fields."""
    plain, transformed = _split(data)
    if masked and not all(_PLAIN_NAME.fullmatch(key) for key in plain):
        raise _LibrarysToBuild
    raw = _WRITE(update=_DOCUMENT(name=path, fields=_fields(plain, named=True)))
    if exists is not None:
        raw.current_document.CopyFrom(_PRECONDITION(exists=exists))
    if masked:  # present even when empty, as the library sets it
        raw.update_mask.SetInParent()
        raw.update_mask.field_paths.extend(sorted(plain))
    raw.update_transforms.extend(_transform(key, transformed[key]) for key in sorted(transformed))
    wrapped: write.Write = write.Write.wrap(raw)
    return wrapped


def create_write(path: str, data: dict[str, Any]) -> write.Write:
    """The Write that creates document ``path`` with ``data``: the library's own."""
    try:
        return _build(path, data, exists=False, masked=False)
    except _LibrarysToBuild:
        (built,) = _helpers.pbs_for_create(path, data)
        return built


def set_write(path: str, data: dict[str, Any], merge: bool = False) -> write.Write:
    """The Write of ``set(data, merge=merge)`` on document ``path``: the library's own."""
    try:
        if merge and (not data or any(isinstance(v, dict) for v in data.values())):
            raise _LibrarysToBuild  # a merge of a map names its leaves
        return _build(path, data, exists=None, masked=merge)
    except _LibrarysToBuild:
        if merge:
            (built,) = _helpers.pbs_for_set_with_merge(path, data, merge)
        else:
            (built,) = _helpers.pbs_for_set_no_merge(path, data)
        return built


def update_write(path: str, data: dict[str, Any]) -> write.Write:
    """The Write of ``update(data)`` on document ``path``: the library's own."""
    try:
        if not data:
            raise _LibrarysToBuild  # which refuses it
        return _build(path, data, exists=True, masked=True)
    except _LibrarysToBuild:
        (built,) = _helpers.pbs_for_update(path, data, None)
        return built
