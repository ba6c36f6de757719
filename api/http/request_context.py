"""Each request's id and Cloud Trace context, for log lines and the X-Request-Id header."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from config.logs import trace_fields

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is kept only when it is short and plain, so it cannot forge log text.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def log_context() -> Mapping[str, Any]:
    """What the log filter adds to a line written while serving a request."""
    if not has_request_context():
        return {}
    return g.get("log_context", {})  # type: ignore[no-any-return]


def _begin(project: str | None) -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    trace = trace_fields(request.headers.get("X-Cloud-Trace-Context", ""), project)
    g.log_context = {"request_id": request_id, **trace}


def _finish(response: Response) -> Response:
    context = log_context()
    if "request_id" in context:
        response.headers[REQUEST_ID_HEADER] = context["request_id"]
    return response


def install_request_context(app: Flask, project: str | None) -> None:
    app.before_request(lambda: _begin(project))
    app.after_request(_finish)
