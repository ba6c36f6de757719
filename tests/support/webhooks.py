"""One way to make a Stripe webhook delivery: the payload and its signed headers.

Every test and bench that posts an event signs it here, with whatever HTTP
client it uses (requests, a Flask test client, a pooled session).
"""

from __future__ import annotations

import json
from typing import Any

from config.settings import DEV_WEBHOOK_SECRET
from services.payments.signature import sign

WEBHOOK_PATH = "/api/stripe/webhook"


def delivery(
    body: dict[str, Any] | bytes | str,
    secret: str = DEV_WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The bytes to post and their headers; ``signature`` replaces the real one (forgeries)."""
    if isinstance(body, dict):
        payload = json.dumps(body).encode()
    else:
        payload = body.encode() if isinstance(body, str) else body
    header = signature if signature is not None else sign(payload, secret, timestamp)
    return payload, {"Stripe-Signature": header, "Content-Type": "application/json"}
