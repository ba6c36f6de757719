"""Stripe webhook signatures: verify (with Stripe's SDK) and sign (for the sandbox).

Stripe's SDK checks the HMAC and that the timestamp is not too old; a
timestamp too far in the future is refused here as well, so a captured
signature cannot be pre-dated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

import stripe

from services.errors import BadSignature, InvalidPayload

TOLERANCE_S = 300
# Stripe's ids are letters, digits and underscores; the id also names a stored document.
EVENT_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header value Stripe would send for ``payload``."""
    moment = int(time.time()) if timestamp is None else timestamp
    signed = f"{moment}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def _timestamp(header: str) -> int:
    """The first ``t`` item, the one Stripe's SDK signs with, so the age checked is the
    age of the timestamp the HMAC covers."""
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key == "t":
            if value.isascii() and value.isdigit():
                return int(value)
            break
    raise BadSignature("Stripe-Signature has no timestamp")


def verify(
    payload: bytes, header: str | None, secrets: tuple[str, ...], now: float | None = None
) -> dict[str, Any]:
    """The parsed event, once the signature matches one of ``secrets`` within tolerance.

    A timestamp up to TOLERANCE_S seconds either side of ``now`` (the wall clock
    by default) is accepted, both edges included.
    """
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    moment = time.time() if now is None else now
    signed_at = _timestamp(header)
    if signed_at - moment > TOLERANCE_S:
        raise BadSignature("signature timestamp is in the future")
    text = payload.decode("utf-8", errors="replace")
    for secret in secrets:
        try:
            # No tolerance given: the SDK would measure age against the wall clock,
            # not ``now``; the age is checked below once the HMAC matches.
            stripe.WebhookSignature.verify_header(text, header, secret)
        except stripe.SignatureVerificationError:
            continue
        if moment - signed_at > TOLERANCE_S:
            raise BadSignature("signature timestamp is too old")
        return parse_event(payload)
    raise BadSignature("no matching signature for any webhook secret")


def parse_event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidPayload("the body is not valid JSON") from exc
    if not isinstance(event, dict):
        raise InvalidPayload("the event is not a JSON object")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidPayload("the event has no id or type")
    if not EVENT_ID.match(event["id"]):
        raise InvalidPayload("the event id is not a Stripe event id")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidPayload("the event has no data.object")
    if not isinstance(event.get("livemode"), bool):
        raise InvalidPayload("the event has no livemode")
    return event
