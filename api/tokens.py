"""Token JSON API: packages, checkout, balance and history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from api import deps
from services.ledger.model import Entry, TxnType

bp = Blueprint("tokens", __name__, url_prefix="/api/tokens")


@bp.get("/packages")
def packages() -> Response:
    catalog = deps.settings().catalog
    return jsonify(success=True, packages=[pack.to_public() for pack in catalog])


@bp.post("/create-checkout-session")
def create_checkout_session() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = request.headers.get("Idempotency-Key")
    gift_to = body.get("gift_recipient")
    recipient = deps.services().transfers.recipient(gift_to) if gift_to else None
    purchase, session = deps.services().checkout.start(user, body.get("package"), key, recipient)
    return jsonify(success=True, session_id=session.id, url=session.url, purchase_id=purchase.id)


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
    return jsonify(success=True, balance=account.balance, debt=account.debt, status=account.status)


@bp.get("/transactions")
def transactions() -> Response:
    user = deps.current_user()
    limit = request.args.get("limit", "20")
    page = deps.ledger().history(
        user.id,
        limit=int(limit) if limit.isdigit() else -1,
        cursor=request.args.get("cursor") or None,
        txn_type=request.args.get("type") or None,
    )
    return jsonify(
        success=True,
        transactions=[_entry_json(e) for e in page.entries],
        next_cursor=page.next_cursor,
    )


FIXED_DESCRIPTIONS = {
    TxnType.REFUND: "Tokens taken back after a refund",
    TxnType.DISPUTE: "Tokens held back during a payment dispute",
    TxnType.DISPUTE_REVERSAL: "Tokens returned: dispute resolved in your favour",
    TxnType.DEBT_REPAYMENT: "Debt repaid",
}


def describe(entry: Entry) -> str:
    """A line a person understands, for the history."""
    if entry.type in FIXED_DESCRIPTIONS:
        return FIXED_DESCRIPTIONS[entry.type]
    if entry.type is TxnType.PURCHASE:
        return f"Bought {entry.reason}" if entry.reason else "Bought tokens"
    if entry.type is TxnType.TRANSFER:
        other = entry.counterparty_id or "another user"
        return f"Sent to {other}" if entry.amount < 0 else f"Received from {other}"
    return entry.reason or entry.type.capitalize()


def _entry_json(entry: Entry) -> dict[str, Any]:
    created = entry.created_at.replace(".000000Z", "Z")
    return {
        "id": entry.id,
        "type": str(entry.type),
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "created_at": created,
        "description": describe(entry),
        "details": {
            "transaction_id": entry.txn_id,
            "reason": entry.reason,
            "counterparty": entry.counterparty_id,
            "debt_after": entry.debt_after,
        },
    }
