"""Stripe's webhook: signature first, then the event id, then one handler.

200 for processed, duplicate, ignored and business rejections (those leave a
purchase in review with an alert); 400 for a bad signature or payload; 5xx
only for transient failures, so that Stripe retries.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.http import deps
from services.errors import BadSignature
from services.payments import signature

bp = Blueprint("stripe_webhook", __name__, url_prefix="/api/stripe")


@bp.post("/webhook")
def webhook() -> Response:
    services = deps.services()
    try:
        event = signature.verify(
            request.get_data(),
            request.headers.get("Stripe-Signature"),
            services.settings.webhook_secrets,
            # The event processor's clock, so a test clock moves the tolerance window too.
            now=services.events.clock().timestamp(),
        )
    except BadSignature as exc:
        services.security.bad_signature(exc.message)
        raise
    result = services.events.process(event)
    if result.duplicate:
        return jsonify(success=True, received=True, duplicate=True)
    return jsonify(success=True, received=True, outcome=result.outcome)
