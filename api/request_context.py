"""Each request's id and Cloud Trace context, for log lines and the X-Request-Id header."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from flask import Flask, Response, g, has_request_context, request

from config.logs import SPAN_KEY, TRACE_KEY

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is kept only when it is short and plain, so it cannot forge log text.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS
_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?")


def log_context() -> Mapping[str, str]:
    """What the log filter adds to a line written while serving a request."""
    if not has_request_context():
        return {}
    return g.get("log_context", {})  # type: ignore[no-any-return]


def _begin(project: str | None) -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    context = {"request_id": request_id}
    trace = _TRACE.match(request.headers.get("X-Cloud-Trace-Context", ""))
    if trace and project:
        context[TRACE_KEY] = f"projects/{project}/traces/{trace.group(1).lower()}"
        if trace.group(2):
            context[SPAN_KEY] = trace.group(2)
    g.log_context = context


def _finish(response: Response) -> Response:
    context = log_context()
    if "request_id" in context:
        response.headers[REQUEST_ID_HEADER] = context["request_id"]
    return response


def install_request_context(app: Flask, project: str | None) -> None:
    app.before_request(lambda: _begin(project))
    app.after_request(_finish)
