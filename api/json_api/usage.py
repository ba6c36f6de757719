"""Metered usage JSON API: start a session, charge increments, top up, close, look."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.http import deps
from services.reservations import Reservations
from services.usage import UsageMeter, UsageSession

bp = Blueprint("usage", __name__, url_prefix="/api/tokens/usage")


def meter() -> UsageMeter:
    return deps.services().reservations.meter


def _session_key(kind: str, session_id: str) -> str:
    return Reservations.session_key(kind, session_id, deps.idempotency_key())


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
    session, available = deps.services().reservations.start_session(
        user.id,
        body.get("amount"),
        deps.text_field(body, "reason"),
        body.get("ttl_seconds"),
        deps.idempotency_key(),
    )
    return jsonify(success=True, **session_json(session), available=available)


@bp.post("/<session_id>/charges")
def charge(session_id: str) -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = _session_key("charge", session_id)
    amount: Any = body.get("amount")
    txn = meter().charge(
        user.id, session_id, amount, key=key, reason=deps.text_field(body, "reason")
    )
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
