"""Metered usage JSON API: start a session, charge increments, top up, close, look."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from api import deps
from services.ledger.model import format_time, utc_now
from services.ledger.usage import validate_session_id
from services.transfers import client_key
from services.usage import UsageMeter, UsageSession

DEFAULT_SESSION_S = 600

bp = Blueprint("usage", __name__, url_prefix="/api/tokens/usage")


def meter() -> UsageMeter:
    return UsageMeter(deps.ledger())


def _reason(body: dict[str, Any]) -> str:
    return str(body["reason"]) if isinstance(body.get("reason"), str) else ""


def _session_key(kind: str, session_id: str) -> str:
    """The client's key, per session: the same key on another session is another charge."""
    return client_key(kind, validate_session_id(session_id), request.headers.get("Idempotency-Key"))


def session_json(session: UsageSession) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "state": session.state,
        "reserved": session.reserved,
        "captured": session.captured,
        "remaining": session.remaining,
        "expires_at": session.expires_at,
    }


@bp.post("")
def start_session() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = client_key("usage", user.id, request.headers.get("Idempotency-Key"))
    ttl = body.get("ttl_seconds", DEFAULT_SESSION_S)
    amount: Any = body.get("amount")  # the ledger refuses anything but a whole number
    txn = meter().start(user.id, amount, key=key, ttl_s=ttl, reason=_reason(body))
    session = meter().session(user.id, txn.id)
    available = deps.ledger().balance(user.id).available(format_time(utc_now()))
    return jsonify(success=True, **session_json(session), available=available)


@bp.post("/<session_id>/charges")
def charge(session_id: str) -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = _session_key("charge", session_id)
    amount: Any = body.get("amount")
    txn = meter().charge(user.id, session_id, amount, key=key, reason=_reason(body))
    entry = txn.user_entry(user.id)
    return jsonify(
        success=True,
        transaction_id=txn.id,
        amount=-entry.amount,
        balance=entry.balance_after,
        captured=int(txn.refs["captured"]),
        remaining=int(txn.refs["remaining"]),
    )


@bp.post("/<session_id>/top-up")
def top_up(session_id: str) -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = _session_key("top-up", session_id)
    amount: Any = body.get("amount")
    ttl = body.get("ttl_seconds")
    txn = meter().top_up(user.id, session_id, amount, key=key, ttl_s=ttl)
    return jsonify(
        success=True,
        transaction_id=txn.id,
        amount=amount,  # the same key with another amount is refused, so this is the one applied
        remaining=int(txn.refs["remaining"]),
        expires_at=txn.refs["expires_at"],
    )


@bp.post("/<session_id>/close")
def close_session(session_id: str) -> Response:
    user = deps.current_user()
    txn = meter().close(user.id, session_id)
    return jsonify(
        success=True,
        transaction_id=txn.id,
        captured=int(txn.refs["captured"]),
        released=int(txn.refs["released"]),
        balance=txn.user_entry(user.id).balance_after,
    )


@bp.get("/<session_id>")
def get_session(session_id: str) -> Response:
    user = deps.current_user()
    return jsonify(success=True, **session_json(meter().session(user.id, session_id)))
