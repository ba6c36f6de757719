"""What operators' work leaves behind: audit records and failed webhook events."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from services.errors import TokenStoreError

# The operator-owned setting where `tokens reconcile` leaves its last result.
LAST_RECONCILIATION = "last_reconciliation"
MAX_ERROR_TEXT = 200


class AdminAction(StrEnum):
    APPROVE = "approve_purchase"
    REFUND = "refund_purchase"
    ACKNOWLEDGE = "acknowledge_alert"
    ACKNOWLEDGE_MANY = "acknowledge_alerts"
    GRANT = "grant_tokens"
    ADJUST = "adjust_tokens"


def error_summary(exc: BaseException) -> str:
    """What went wrong, for an operator: our own errors' code and message, else the class.

    Other exceptions' text may quote anything (a payload, a driver's request),
    so only their class name is kept.
    """
    if isinstance(exc, TokenStoreError):
        return f"{exc.code}: {exc.message}"[:MAX_ERROR_TEXT]
    return type(exc).__name__


def audit_id_for(admin_id: str, action: str, key: str) -> str:
    """Derived from the form's idempotency key, so a repeated submit finds the first record."""
    digest = hashlib.sha256(f"{admin_id}\n{action}\n{key}".encode()).hexdigest()
    return "audit_" + digest[:32]


@dataclass(frozen=True)
class AuditRecord:
    id: str
    admin_id: str
    action: str
    target: str  # "purchase:<id>", "alert:<id>", "alerts:<digest of the ids>" or "user:<id>"
    reason: str
    created_at: str
    details: Mapping[str, Any] = field(default_factory=dict)  # outcome: amounts, ids, message

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        values["details"] = dict(values.get("details") or {})
        return cls(**values)


@dataclass(frozen=True)
class EventFailure:
    """A webhook event whose processing raised; Stripe (or the sandbox) will retry it."""

    event_id: str
    type: str
    error: str  # a short summary: the error's class and code, never the payload
    attempts: int
    first_at: str
    last_at: str
    resolved_at: str | None = None  # set when the same event later succeeded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventFailure:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**values)
