"""Token JSON API: packages, spending, tips, holds, balance and history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.http import deps
from api.http.conditional import conditional
from api.json_api.entries import entry_json
from services.ledger.model import format_time, utc_now

bp = Blueprint("tokens", __name__, url_prefix="/api/tokens")


@bp.get("/packages")
def packages() -> Response:
    catalog = deps.settings().catalog
    return jsonify(success=True, packages=[pack.to_public() for pack in catalog])


@bp.post("/spend")
def spend() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    txn = deps.services().transfers.spend(
        user, body.get("amount"), body.get("reason"), request.headers.get("Idempotency-Key")
    )
    entry = txn.user_entry(user.id)
    return jsonify(
        success=True, transaction_id=txn.id, amount=-entry.amount, balance=entry.balance_after
    )


@bp.post("/transfer")
def transfer() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    txn, recipient = deps.services().transfers.transfer(
        user,
        body.get("recipient"),
        body.get("amount"),
        body.get("note"),
        request.headers.get("Idempotency-Key"),
    )
    entry = txn.user_entry(user.id)
    return jsonify(
        success=True,
        transaction_id=txn.id,
        amount=-entry.amount,
        balance=entry.balance_after,
        recipient={"id": recipient.id, "username": recipient.username},
    )


@bp.get("/balance")
def balance() -> Response:
    account = deps.ledger().balance(deps.current_user().id)
    now = format_time(utc_now())
    answer = jsonify(
        success=True,
        balance=account.balance,
        debt=account.debt,
        status=account.status,
        available=account.available(now),
        held=account.held(now),
    )
    return conditional(answer)


@bp.post("/holds")
def create_hold() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    placed = deps.services().reservations.hold(
        user.id,
        body.get("amount"),
        deps.text_field(body, "reason"),
        body.get("ttl_seconds"),
        deps.idempotency_key(),
    )
    return jsonify(
        success=True,
        hold_id=placed.hold_id,
        amount=placed.amount,
        expires_at=placed.expires_at,
        available=placed.available,
    )


@bp.post("/holds/<hold_id>/capture")
def capture_hold(hold_id: str) -> Response:
    user = deps.current_user()
    body = deps.json_body()
    amount: Any = body.get("amount")  # the ledger refuses anything but a whole number
    txn = deps.ledger().capture(user.id, hold_id, amount, reason="captured hold")
    entry = txn.user_entry(user.id)
    return jsonify(
        success=True, transaction_id=txn.id, amount=-entry.amount, balance=entry.balance_after
    )


@bp.post("/holds/<hold_id>/release")
def release_hold(hold_id: str) -> Response:
    user = deps.current_user()
    txn = deps.ledger().release(user.id, hold_id)
    return jsonify(
        success=True, transaction_id=txn.id, balance=txn.user_entry(user.id).balance_after
    )


@bp.get("/transactions")
def transactions() -> Response:
    user = deps.current_user()
    limit = request.args.get("limit", "20")
    page = deps.ledger().history(
        user.id,
        # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
        limit=int(limit) if limit.isascii() and limit.isdigit() else -1,
        cursor=request.args.get("cursor") or None,
        txn_type=request.args.get("type") or None,
    )
    names = deps.services().views.counterparty_names(page.entries)
    catalog = deps.settings().catalog
    return jsonify(
        success=True,
        transactions=[entry_json(e, names, catalog) for e in page.entries],
        next_cursor=page.next_cursor,
    )
