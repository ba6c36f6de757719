"""Log lines: JSON in the shape Cloud Logging reads, or readable text in development.

Every line passes through one redaction step first, so a secret key, a webhook
signature, a session cookie, a bearer token, a card number or a full email
address never reaches the logs, whoever wrote the message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
# Record attributes (set with ``extra=``) that become fields of their own.
FIELDS = (
    "request_id",
    "event_id",
    "event_type",
    "purchase_id",
    "user_id",
    "alert_type",
    "outcome",
    "httpRequest",
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"), "[redacted key]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "[redacted secret]"),
    (re.compile(r"\bt=\d+(?:,v\d=[A-Za-z0-9]+)+"), "[redacted signature]"),
    (re.compile(r"\bv1=[0-9a-fA-F]{16,}"), "v1=[redacted]"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[redacted token]"),
    (re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"(?i)\b(session|cookie)=[^;\s,]+"), r"\1=[redacted]"),
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[redacted card]"),
    (
        re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b"),
        r"\1***@\2",
    ),
)
SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside ``value`` (strings, lists and dicts)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RequestContext(logging.Filter):
    """Adds the request id and trace of the request being served, if any."""

    def __init__(self, lookup: Callable[[], Mapping[str, str]]) -> None:
        super().__init__()
        self.lookup = lookup

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.lookup().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def message_of(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{formatter.formatException(record.exc_info)}"
    return redact(message)


class CloudJsonFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, trace, and known fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": SEVERITY.get(record.levelname, "DEBUG"),
            "message": message_of(record, self),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for key in (TRACE_KEY, SPAN_KEY, *FIELDS):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = redact_value(value)
        return json.dumps(entry, default=str)


class ReadableFormatter(logging.Formatter):
    """Development: the usual line, with the known fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record)
        line = f"{stamp} {record.levelname} {record.name} {message_of(record, self)}"
        pairs = [
            f"{key}={redact_value(getattr(record, key))}"
            for key in FIELDS
            if key not in ("httpRequest", "request_id") and getattr(record, key, None) is not None
        ]
        return f"{line} [{' '.join(pairs)}]" if pairs else line


def formatter_for(fmt: str) -> logging.Formatter:
    return CloudJsonFormatter() if fmt == "json" else ReadableFormatter()


def configure_logging(fmt: str, context: Callable[[], Mapping[str, str]]) -> None:
    """Replace the root handlers with one stderr handler in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(fmt))
    handler.addFilter(RequestContext(context))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
