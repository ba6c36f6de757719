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
from collections.abc import Iterable, Iterator, Mapping
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


def _pairs(headers: Any) -> Iterable[tuple[str, Any]]:
    """(name, value) pairs from gunicorn's list of them, or from a mapping."""
    return headers.items() if hasattr(headers, "items") else (headers or ())


def _header(headers: object, name: str) -> str | None:
    """A response header's value from gunicorn's list of (name, value) pairs."""
    for key, value in _pairs(headers):
        if str(key).lower() == name:
            return str(value)
    return None


class LazyAtoms(Mapping[str, Any]):
    """gunicorn's access-log atoms as its SafeAtoms gives them (a string's ``"`` escaped,
    ``-`` for what is missing, ``{name}i/o/e`` case-insensitive), but a request header,
    response header or environ entry looked up only when the format names it.

    gunicorn's own ``atoms`` copies every header and every WSGI environ entry into one
    dict per request, and SafeAtoms copies that again: most of the readable access
    line's cost, for a format that uses none of them by default.
    """

    def __init__(
        self,
        logger: glogging.Logger,
        resp: Any,
        environ: Mapping[str, Any],
        request_time: timedelta,
        req: object,
    ) -> None:
        status = resp.status
        sent = getattr(resp, "sent", None)
        seconds, micros = request_time.seconds, request_time.microseconds
        self._base: dict[str, Any] = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": logger._get_user(environ) or "-",
            "t": logger.now(),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status.split(None, 1)[0] if isinstance(status, str) else status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": str(sent) if sent is not None else "-",
            "B": sent,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": seconds,
            "D": seconds * 1000000 + micros,
            "M": seconds * 1000 + int(micros / 1000),
            "L": f"{seconds}.{micros:06d}",
            "p": f"<{os.getpid()}>",
        }
        self._sources = {
            "i": getattr(req, "headers", req),  # gunicorn's request, or its headers
            "o": resp.headers,
            "e": environ,
        }

    def _braced(self, key: str) -> Any:
        if not key.endswith(("}i", "}o", "}e")):
            return "-"
        name = key[1:-2]
        found: Any = "-"
        for header, value in _pairs(self._sources[key[-1]]):
            if header.lower() == name:
                found = value  # the last one, as gunicorn's dict keeps it
        return found

    def __getitem__(self, key: str) -> Any:
        value = self._braced(key.lower()) if key.startswith("{") else self._base.get(key, "-")
        return value.replace('"', '\\"') if isinstance(value, str) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


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
        if not self.access_log_enabled:
            return
        if not self.json_lines:
            self._readable_access(resp, req, environ, request_time)
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

    def _readable_access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta
    ) -> None:
        """gunicorn's own access line, its atoms computed as the format asks for them."""
        try:
            atoms = LazyAtoms(self, resp, environ, request_time, req)
            self.access_log.info(self.cfg.access_log_format, atoms)
        except Exception:
            self.error(traceback.format_exc())
