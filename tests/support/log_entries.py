"""Captured output lines as the LogEntry objects Cloud Logging makes of them on Cloud Run.

A line that is a JSON object becomes a structured entry: the special fields
(``severity``, ``httpRequest``, ``time``, ``logging.googleapis.com/trace`` and
the other ``logging.googleapis.com/*`` keys) move into the LogEntry itself and
everything else, ``message`` included, stays in ``jsonPayload``. Any other line
becomes a ``textPayload`` entry with severity DEFAULT.
"""

from __future__ import annotations

import json
from typing import Any

from config.logs import SAMPLED_KEY, SPAN_KEY, TRACE_KEY

SERVICE = "token-store"  # the service name the README deploys and the filters name
# JSON keys lifted out of jsonPayload, and the LogEntry field each one becomes.
LIFTED = {
    "severity": "severity",
    "httpRequest": "httpRequest",
    "time": "timestamp",
    "timestamp": "timestamp",
    TRACE_KEY: "trace",
    SPAN_KEY: "spanId",
    SAMPLED_KEY: "traceSampled",
    "logging.googleapis.com/labels": "labels",
    "logging.googleapis.com/insertId": "insertId",
    "logging.googleapis.com/operation": "operation",
    "logging.googleapis.com/sourceLocation": "sourceLocation",
}


def service_resource(service: str = SERVICE) -> dict[str, Any]:
    return {
        "type": "cloud_run_revision",
        "labels": {"service_name": service, "revision_name": f"{service}-00001-abc"},
    }


def job_resource(job: str = f"{SERVICE}-reconcile") -> dict[str, Any]:
    return {"type": "cloud_run_job", "labels": {"job_name": job}}


def log_name(project: str, stream: str) -> str:
    """Cloud Run's container logs: ``run.googleapis.com/stdout`` or ``/stderr``, URL-encoded."""
    return f"projects/{project}/logs/run.googleapis.com%2F{stream}"


def to_entry(line: str, name: str, resource: dict[str, Any]) -> dict[str, Any]:
    """One output line as its LogEntry: structured when it is a JSON object, else text."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {"logName": name, "resource": resource, "severity": "DEFAULT", "textPayload": line}
    return structured_entry(data, name, resource)


def structured_entry(data: dict[str, Any], name: str, resource: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"logName": name, "resource": resource}
    entry["severity"] = str(data.get("severity", "DEFAULT")).upper()
    for key, field in LIFTED.items():
        if key in data and key != "severity":
            entry[field] = data[key]
    entry["jsonPayload"] = {k: v for k, v in data.items() if k not in LIFTED}
    return entry
