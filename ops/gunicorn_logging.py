"""Gunicorn's logger: one JSON line per request in the shape Cloud Logging reads.

Cloud Run sends each stdout line that is a JSON object to Cloud Logging, which
lifts ``severity``, ``message``, ``httpRequest`` and
``logging.googleapis.com/trace`` into the log entry itself, so requests show
with their method, status and latency and sit under their trace. JSON lines
are on with ``LOG_FORMAT=json``, or by default when ``APP_ENV=production``;
otherwise gunicorn's readable access line is kept for development.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]

from config.logs import (
    CloudJsonFormatter,
    log_format,
    log_project,
    redact_value,
    trace_fields,
)

TRACE_HEADER = "HTTP_X_CLOUD_TRACE_CONTEXT"  # TRACE_ID/SPAN_ID;o=OPTIONS


def remote_ip(environ: Mapping[str, Any]) -> str:
    """The client's address: the last X-Forwarded-For hop, added by Cloud Run's front end.

    Earlier hops come from the client and may be anything; without the header
    (local runs) the socket's peer is the client.
    """
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-1] if hops else str(environ.get("REMOTE_ADDR", ""))


def request_url(environ: Mapping[str, Any]) -> str:
    """Scheme, host, path and query, as the client asked for them."""
    scheme = str(environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
    path = str(environ.get("RAW_URI") or environ.get("PATH_INFO", "/"))
    return f"{scheme.split(',', maxsplit=1)[0].strip()}://{host}{path}"


def severity_for(status: int) -> str:
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARNING"
    return "INFO"


def access_entry(
    environ: Mapping[str, Any],
    status: int,
    response_size: int,
    latency: timedelta,
    project: str | None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One request as a Cloud Logging entry (``httpRequest`` is the LogEntry's own field)."""
    method = str(environ.get("REQUEST_METHOD", ""))
    url = request_url(environ)
    http_request: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": url,
        "status": status,
        # int64 fields are strings in the JSON form of Cloud Logging's protos.
        "responseSize": str(response_size),
        "userAgent": str(environ.get("HTTP_USER_AGENT", "")),
        "remoteIp": remote_ip(environ),
        "latency": f"{latency.total_seconds():.6f}s",
        "protocol": str(environ.get("SERVER_PROTOCOL", "")),
    }
    referer = environ.get("HTTP_REFERER")
    if referer:
        http_request["referer"] = str(referer)
    entry: dict[str, Any] = {
        "severity": severity_for(status),
        "message": f"{method} {environ.get('RAW_URI') or environ.get('PATH_INFO', '/')} {status}",
        "httpRequest": http_request,
    }
    if request_id:
        entry["request_id"] = request_id
    entry.update(trace_fields(str(environ.get(TRACE_HEADER, "")), project))
    return redact_value(entry)  # type: ignore[no-any-return]


def _status_code(status: object) -> int:
    text = str(status).split(None, 1)[0] if status is not None else ""
    return int(text) if text.isdigit() else 0


def _header(headers: object, name: str) -> str | None:
    """A response header's value from gunicorn's list of (name, value) pairs."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items or ():  # type: ignore[attr-defined]
        if str(key).lower() == name:
            return str(value)
    return None


class CloudRunLogger(glogging.Logger):  # type: ignore[misc]
    """Gunicorn's Logger with JSON access lines (and JSON error lines) when enabled."""

    def setup(self, cfg: Any) -> None:
        self.json_lines = log_format(os.environ) == "json"
        self.project = log_project(os.environ)
        super().setup(cfg)
        if self.json_lines:
            for handler in self.error_log.handlers:
                handler.setFormatter(CloudJsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.json_lines:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        try:
            entry = access_entry(
                environ,
                status=_status_code(resp.status),
                response_size=int(getattr(resp, "sent", 0) or 0),
                latency=request_time,
                project=self.project,
                request_id=_header(getattr(resp, "headers", ()), "x-request-id"),
            )
            # json.dumps escapes quotes, backslashes and control characters a client may send.
            self.access_log.info("%s", json.dumps(entry, ensure_ascii=False))
        except Exception:
            self.error(traceback.format_exc())
