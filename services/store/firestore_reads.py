"""A batched read's answers turned into snapshots straight from their protobufs.

The library's ``_parse_batch_get`` reaches each answer through proto-plus, which
converts every field it touches (a document's timestamps among them) on each access,
decodes each value with a chain of type tests, and deep-copies the data into the
snapshot: about 56 µs for an account document. ``snapshot`` makes the same
DocumentSnapshot from the raw protobuf in about 21. It decodes the values the store writes
(null, booleans, numbers, strings, arrays and maps) itself and hands every other
value (timestamps, bytes, references, geo points) to the library's ``decode_value``;
a map with a key that starts with ``__`` (a vector's or a BSON value's wire form) and
an answer with neither a document nor a missing name go to the library whole. The
snapshot's three times are converted only when asked for: the store reads them only
for a history page. tests/unit/test_firestore_reads.py checks it against the library's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from operator import attrgetter
from typing import Any

from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_client import _get_reference, _parse_batch_get
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.types import firestore as firestore_types
from proto.datetime_helpers import (  # type: ignore[import-untyped]
    DatetimeWithNanoseconds,  # the type proto-plus gives
)

_PLAIN: dict[str, Callable[[Any], Any]] = {
    "null_value": lambda _: None,
    "boolean_value": attrgetter("boolean_value"),
    "integer_value": attrgetter("integer_value"),
    "double_value": attrgetter("double_value"),
    "string_value": attrgetter("string_value"),
}


def _value(value: Any, client: Any) -> Any:
    kind = value.WhichOneof("value_type")
    plain = _PLAIN.get(kind)
    if plain is not None:
        return plain(value)
    if kind == "map_value":
        return decode_fields(value.map_value.fields, client)
    if kind == "array_value":
        return [_value(element, client) for element in value.array_value.values]
    return _helpers.decode_value(value, client)


def decode_fields(fields: Mapping[str, Any], client: Any) -> Any:
    """A protobuf map of Values as the library's ``decode_dict`` gives it."""
    if any(key.startswith("__") for key in fields):
        return _helpers.decode_dict(fields, client)
    return {key: _value(value, client) for key, value in fields.items()}


def _time(message: Any, field: str) -> DatetimeWithNanoseconds | None:
    if not message.HasField(field):
        return None
    return DatetimeWithNanoseconds.from_timestamp_pb(getattr(message, field))


class _Snapshot(DocumentSnapshot):  # type: ignore[type-arg]
    """A DocumentSnapshot whose three times are converted when first asked for.

    The store reads the data alone, except a history page's ``read_time``; a paid
    event's read answers 9 documents, and converting their 27 times was about 4% of
    the event's CPU on the emulator.
    """

    _answer: Any  # the raw BatchGetDocumentsResponse
    _document: Any  # its found Document, None for a missing one

    @cached_property
    def read_time(self) -> DatetimeWithNanoseconds | None:
        return _time(self._answer, "read_time")

    @cached_property
    def create_time(self) -> DatetimeWithNanoseconds | None:
        return None if self._document is None else _time(self._document, "create_time")

    @cached_property
    def update_time(self) -> DatetimeWithNanoseconds | None:
        return None if self._document is None else _time(self._document, "update_time")


def _snapshot(reference: Any, data: Any, answer: Any, document: Any) -> DocumentSnapshot[Any]:
    """DocumentSnapshot's own fields, set as its ``__init__`` sets them, without the deep
    copy it makes of the data: these data were just decoded and nothing else holds them."""
    made = _Snapshot.__new__(_Snapshot)
    made._reference = reference
    made._data = data
    made._exists = data is not None
    made._answer, made._document = answer, document
    return made


def snapshot(answer: Any, references: dict[str, Any], client: Any) -> DocumentSnapshot[Any]:
    """The snapshot in one raw BatchGetDocumentsResponse, as ``_parse_batch_get`` makes it."""
    kind = answer.WhichOneof("result")
    if kind == "found":
        document = answer.found
        reference = _get_reference(document.name, references)
        return _snapshot(reference, decode_fields(document.fields, client), answer, document)
    if kind == "missing":
        return _snapshot(_get_reference(answer.missing, references), None, answer, None)
    wrapped = firestore_types.BatchGetDocumentsResponse.wrap(answer)
    return _parse_batch_get(wrapped, references, client)
