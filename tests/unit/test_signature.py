"""Webhook signatures: Stripe's scheme, several secrets, malformed events.

The timestamp tolerance is in test_signature_tolerance.py.
"""

from __future__ import annotations

import json

import pytest

from services.errors import BadSignature, InvalidPayload
from services.payments.signature import parse_event, sign, verify

BODY = json.dumps(
    {"id": "evt_1", "type": "x.y", "livemode": False, "data": {"object": {"id": "o"}}}
).encode()


def test_any_of_several_secrets_verifies() -> None:
    header = sign(BODY, "whsec_old")
    assert verify(BODY, header, ("whsec_new", "whsec_old"))["id"] == "evt_1"
    with pytest.raises(BadSignature, match="no matching signature"):
        verify(BODY, header, ("whsec_new",))


def test_a_changed_body_fails() -> None:
    header = sign(BODY, "s")
    with pytest.raises(BadSignature):
        verify(BODY.replace(b"evt_1", b"evt_2"), header, ("s",))


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'{"id": 5, "type": "t", "data": {"object": {}}}',
        b'{"id": "evt/../x", "type": "t", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "t", "data": {"object": null}}',
        b"\xff\xfe",
    ],
)
def test_malformed_events_are_refused(payload: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_event(payload)
