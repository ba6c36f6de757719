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
from urllib.parse import unquote, unquote_to_bytes

from config.errors import ConfigError

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
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
# (pattern, replacement, text that every match contains): a pattern whose text is
# absent cannot match, so its scan is skipped; most values logged (ids, event types,
# outcomes) need no more than the scans with "" (always run). Case-insensitive
# patterns have "" or a text without letters: Unicode case folding is wider than ASCII.
_REDACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str], str], ...] = (
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"), "[redacted key]", "_"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "[redacted secret]", "whsec_"),
    (re.compile(r"\bt=\d+(?:,v\d=[A-Za-z0-9]+)+"), "[redacted signature]", "t="),
    (re.compile(r"\bv1=[0-9a-fA-F]{16,}"), "v1=[redacted]", "v1="),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[redacted token]", "eyJ"),
    (re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+"), "Bearer [redacted]", ""),
    (re.compile(r"(?i)\b(session|cookie)=[^;\s,]+"), r"\1=[redacted]", "="),
    # A PaymentIntent's client secret lets a browser confirm it; its id alone does not.
    (
        re.compile(r"\b((?:pi|seti)_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+"),
        r"\1_secret_[redacted]",
        "_secret_",
    ),
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[redacted card]", ""),
    # Any local part (underscores, non-ASCII letters) and any domain, IDNs included.
    (
        re.compile(r"(?<![\w.%+-])([\w.%+-])[\w.%+-]*@((?:[\w-]+\.)+[\w-]{2,})"),
        r"\1***@\2",
        "@",
    ),
)
# Runs of %XX escapes (a URL-encoded query string in an access line).
PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
MAX_DECODE_ROUNDS = 3  # %2540 is %40 encoded again
SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}
LOG_FORMATS = ("json", "text")
# X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS (the span is a decimal number)
CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?$")


def log_format(env: Mapping[str, str]) -> str:
    """``LOG_FORMAT`` decides; unset, production logs JSON and development text."""
    chosen = env.get("LOG_FORMAT", "").strip().lower()
    if chosen and chosen not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be json or text, got {chosen!r}")
    return chosen or ("json" if env.get("APP_ENV") == "production" else "text")


def log_project(env: Mapping[str, str]) -> str | None:
    """The Google Cloud project that traces belong to."""
    return env.get("GOOGLE_CLOUD_PROJECT") or env.get("FIREBASE_PROJECT_ID") or None


def trace_fields(header: str, project: str | None) -> dict[str, Any]:
    """Cloud Logging's trace fields from an X-Cloud-Trace-Context value."""
    match = CLOUD_TRACE.match(header.strip())
    if not project or not match:
        return {}
    trace_id, span, sampled = match.group(1).lower(), match.group(2), match.group(3)
    fields: dict[str, Any] = {TRACE_KEY: f"projects/{project}/traces/{trace_id}"}
    # Cloud Logging wants the span as 16 hex digits.
    if span and 0 < int(span) < 2**64:
        fields[SPAN_KEY] = f"{int(span):016x}"
    if sampled:
        fields[SAMPLED_KEY] = sampled == "1"
    return fields


def _decoded_run(match: re.Match[str]) -> str:
    text = unquote(match.group(0), errors="strict") if _utf8(match.group(0)) else match.group(0)
    # A decoded line break or control character could forge log lines: keep those encoded.
    return text if text.isprintable() else match.group(0)


def _utf8(run: str) -> bool:
    try:
        unquote_to_bytes(run).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_percent(text: str) -> str:
    """Decode URL-encoded runs, so an encoded address is redacted like a plain one."""
    if "%" not in text:  # no run to decode
        return text
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = PERCENT_RUN.sub(_decoded_run, text)
        if decoded == text:
            break
        text = decoded
    return text


def _redacted(text: str) -> str:
    for pattern, replacement, needs in _REDACTIONS:
        if needs in text:
            text = pattern.sub(replacement, text)
    return text


def redact(text: str) -> str:
    """Hide secrets, in the text as written or once URL-encoded runs are decoded.

    A line keeps its encoding (an access line's URL stays as sent) unless decoding
    reveals something to hide; then the decoded, redacted text is logged.
    """
    decoded = decode_percent(text)
    if decoded == text or _redacted(decoded) == decoded:
        return _redacted(text)
    return _redacted(decoded)


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

    def __init__(self, lookup: Callable[[], Mapping[str, Any]]) -> None:
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
        for key in (TRACE_KEY, SPAN_KEY, SAMPLED_KEY, *FIELDS):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = redact_value(value)
        return json.dumps(entry, default=str, ensure_ascii=False)


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


class _StoreHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second app replaces only it."""


def configure_logging(fmt: str, context: Callable[[], Mapping[str, Any]]) -> None:
    """Send the root logger's lines to stderr in ``fmt`` ("json" or "text").

    Handlers others installed (a test's log capture, say) are left in place.
    """
    handler = _StoreHandler(sys.stderr)
    handler.setFormatter(formatter_for(fmt))
    handler.addFilter(RequestContext(context))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StoreHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
