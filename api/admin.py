"""The operator's JSON API: grants and refunds, the same services as the CLI.

Only signed-in users whose email is in OPERATOR_EMAILS may call it.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api import deps
from services.errors import DomainError, NotAnOperator, PurchaseNotFound
from services.ledger.model import TxnType
from services.payments.model import User
from services.payments.refunds import RefundService

bp = Blueprint("admin", __name__, url_prefix="/admin/api")


def operator() -> User:
    user = deps.current_user()
    if (user.email or "").lower() not in deps.settings().operator_emails:
        raise NotAnOperator("this needs an operator account")
    return user


@bp.post("/grants")
def grant() -> Response:
    operator()
    body = deps.json_body()
    services = deps.services()
    target = services.transfers.recipient(body.get("user"))
    key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
    amount: Any = body.get("amount")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise DomainError("a grant needs a reason the user will see")
    txn = services.ledger.credit(
        target.id, amount, key=f"grant:{target.id}:{key}", type=TxnType.GRANT, reason=reason
    )
    services.ledger.settle_debt(target.id, txn.id)
    entry = txn.user_entry(target.id)
    return jsonify(
        success=True, transaction_id=txn.id, user_id=target.id, balance=entry.balance_after
    )


@bp.post("/refunds")
def refund() -> Response:
    operator()
    body = deps.json_body()
    services = deps.services()
    amount = body.get("amount")
    refunds = RefundService(services.store, services.payments)
    plan = refunds.plan(
        str(body.get("purchase_id", "")),
        amount if isinstance(amount, int) else None,
        body.get("force") is True,
    )
    result = refunds.refund(plan)
    return jsonify(
        success=True,
        refund_id=result.get("id"),
        amount=plan.amount,
        max_covered=plan.max_amount,
        unspent_tokens=plan.unspent_tokens,
    )


@bp.get("/purchases/<purchase_id>")
def purchase(purchase_id: str) -> Response:
    operator()
    found = deps.services().store.get_purchase(purchase_id)
    if found is None:
        raise PurchaseNotFound(f"no purchase {purchase_id}")
    return jsonify(success=True, purchase=found.to_dict())
