"""The Firestore emulator's REST API, as a web or mobile client would call it.

Security rules apply to these requests. A client is signed in with an
emulator ID token (an unsigned JWT), signed out with no token, or is the
emulator's administrator with the token ``owner``, which bypasses the rules
the way the server's IAM credentials do in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from tests.support.firebase_tokens import emulator_id_token

TIMEOUT_S = 10.0
ADMIN_TOKEN = "owner"  # the emulator's fixed administrator credential


_SCALARS: tuple[tuple[type, str, Callable[[Any], object]], ...] = (
    (bool, "booleanValue", bool),  # before int: bool is an int
    (int, "integerValue", str),  # the REST API carries 64-bit integers as strings
    (float, "doubleValue", float),
    (str, "stringValue", str),
)


def encode(value: object) -> dict[str, Any]:
    """A Python value as a Firestore REST ``Value``."""
    if value is None:
        return {"nullValue": None}
    for kind, key, convert in _SCALARS:
        if isinstance(value, kind):
            return {key: convert(value)}
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": encode_fields(value)}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [encode(item) for item in value]}}
    raise TypeError(f"no Firestore encoding for {value!r}")


def encode_fields(data: Mapping[str, object]) -> dict[str, Any]:
    return {str(key): encode(item) for key, item in data.items()}


def decode(value: Mapping[str, Any]) -> object:
    """A Firestore REST ``Value`` as a Python value."""
    ((kind, raw),) = value.items()
    if kind == "nullValue":
        return None
    if kind == "integerValue":
        return int(raw)
    if kind == "mapValue":
        return decode_fields(raw.get("fields", {}))
    if kind == "arrayValue":
        return [decode(item) for item in raw.get("values", [])]
    if kind in {"booleanValue", "doubleValue", "stringValue", "timestampValue"}:
        return raw
    raise TypeError(f"unexpected Firestore value {value!r}")


def decode_fields(fields: Mapping[str, Any]) -> dict[str, object]:
    return {key: decode(item) for key, item in fields.items()}


def equals_filter(field: str, value: object) -> dict[str, Any]:
    return {"fieldFilter": {"field": {"fieldPath": field}, "op": "EQUAL", "value": encode(value)}}


class FirestoreRest:
    """One client of the emulator: admin, signed in as ``uid``, or signed out."""

    def __init__(self, host: str, project: str, token: str | None) -> None:
        self.project = project
        self.root = f"projects/{project}/databases/(default)/documents"
        self.base = f"http://{host}/v1/{self.root}"
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def admin(cls, host: str, project: str) -> FirestoreRest:
        return cls(host, project, ADMIN_TOKEN)

    @classmethod
    def signed_in(cls, host: str, project: str, uid: str) -> FirestoreRest:
        return cls(host, project, emulator_id_token(project, uid))

    @classmethod
    def signed_out(cls, host: str, project: str) -> FirestoreRest:
        return cls(host, project, None)

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=TIMEOUT_S)

    def create(self, collection: str, doc_id: str, data: Mapping[str, object]) -> requests.Response:
        return self.session.post(
            f"{self.base}/{collection}",
            params={"documentId": doc_id},
            json={"fields": encode_fields(data)},
            timeout=TIMEOUT_S,
        )

    def update(self, path: str, data: Mapping[str, object]) -> requests.Response:
        """Overwrite an existing document (fails rather than create a missing one)."""
        return self.session.patch(
            f"{self.base}/{path}",
            params={"currentDocument.exists": "true"},
            json={"fields": encode_fields(data)},
            timeout=TIMEOUT_S,
        )

    def put(self, path: str, data: Mapping[str, object]) -> requests.Response:
        """Create or overwrite a document."""
        return self.session.patch(
            f"{self.base}/{path}", json={"fields": encode_fields(data)}, timeout=TIMEOUT_S
        )

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(f"{self.base}/{path}", timeout=TIMEOUT_S)

    def run_query(self, structured_query: Mapping[str, Any]) -> requests.Response:
        return self.session.post(
            f"{self.base}:runQuery",
            json={"structuredQuery": structured_query},
            timeout=TIMEOUT_S,
        )

    def collection_ids(self) -> set[str]:
        response = self.session.post(f"{self.base}:listCollectionIds", json={}, timeout=TIMEOUT_S)
        response.raise_for_status()
        return set(response.json().get("collectionIds", []))

    def document_path(self, name: str) -> str:
        """``collection/id`` from a full document name in a response."""
        return name.removeprefix(f"{self.root}/")
