"""One place maps errors to HTTP: the domain and storage families, and HTTP errors.

JSON routes (/api/..., /healthz, /readyz) get {"success": false, "error", "code"};
other paths keep Flask's HTML error pages.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from services.errors import StorageError, TokenStoreError

log = logging.getLogger(__name__)
RETRY_AFTER_S = "1"


def json_error(message: str, code: str, status: int) -> tuple[Response, int]:
    return jsonify(success=False, error=message, code=code), status


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/readyz"))


def _domain_or_storage(exc: TokenStoreError) -> tuple[Response, int]:
    response, status = json_error(exc.message, exc.code, exc.http_status)
    if isinstance(exc, StorageError):
        log.warning("storage error on %s: %s", request.path, exc.message)
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response, status


def _http(exc: HTTPException) -> tuple[Response, int] | HTTPException:
    if not wants_json():
        return exc
    code = (exc.name or "error").lower().replace(" ", "_")
    return json_error(exc.description or exc.name, code, exc.code or 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(TokenStoreError, _domain_or_storage)
    app.register_error_handler(HTTPException, _http)
