"""One place maps errors to HTTP: the domain, storage and payments families, and HTTP errors.

JSON routes (/api/..., /auth/..., /healthz, /readyz, the sandbox's two JSON
routes) get {"success": false, "error", "code"}; pages get a short HTML page.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from services.errors import PurchaseLimitReached, StorageError, TokenStoreError
from services.payments.errors import Kind, PaymentsError

log = logging.getLogger(__name__)
RETRY_AFTER_S = "1"
JSON_PREFIXES = (
    "/api/",
    "/admin/api/",
    "/auth/",
    "/healthz",
    "/readyz",
    # The sandbox's stand-in for Stripe.js, and its delivery count: JSON, unlike its pages.
    "/sandbox/payment-intents/",
    "/sandbox/deliveries",
)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.is_json


def error_response(message: str, code: str, status: int) -> tuple[Response, int]:
    if wants_json():
        return jsonify(success=False, error=message, code=code), status
    html = render_template("error.html", message=message, status=status)
    return Response(html, status=status, mimetype="text/html"), status


def _domain_or_storage(exc: TokenStoreError) -> tuple[Response, int]:
    response, status = error_response(exc.message, exc.code, exc.http_status)
    if isinstance(exc, StorageError):
        log.warning("storage error on %s: %s", request.path, exc.message)
        response.headers["Retry-After"] = RETRY_AFTER_S
    if isinstance(exc, PurchaseLimitReached):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response, status


PAYMENTS_MESSAGES = {
    Kind.TRANSIENT: "the payment provider is not answering; try again shortly",
    Kind.FAILED: "the payment provider failed to handle the request",
    Kind.NOT_FOUND: "the payment provider has no such payment",
    Kind.REFUSED: "the payment provider refused the request",
}


def _payments(exc: PaymentsError) -> tuple[Response, int]:
    """By the error's own kind; the provider's words stay in the log, not the answer."""
    log.warning("payment provider error on %s: %s", request.path, exc)
    response, status = error_response(PAYMENTS_MESSAGES[exc.kind], exc.code, exc.http_status)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response, status


def _csrf(exc: CSRFError) -> tuple[Response, int]:
    return error_response(exc.description or "CSRF token missing", "csrf_failed", 400)


def _http(exc: HTTPException) -> tuple[Response, int]:
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.description or exc.name, code, exc.code or 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(TokenStoreError, _domain_or_storage)
    app.register_error_handler(PaymentsError, _payments)
    app.register_error_handler(CSRFError, _csrf)
    app.register_error_handler(HTTPException, _http)
