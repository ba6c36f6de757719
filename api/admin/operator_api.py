"""The operator's JSON API: grants and refunds, the same services as the dashboard.

Only admins may call it (``services.operations.access.is_admin``); each call
leaves an audit record naming the admin.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from api.http import deps
from services.errors import NotAnOperator
from services.ledger.rules import validate_amount
from services.operations.access import is_admin
from services.operations.actions import ActionRequest, AdminActions
from services.payments.model import User

bp = Blueprint("admin", __name__, url_prefix="/admin/api")


def operator() -> User:
    """The signed-in admin; 401 when signed out, 403 for everyone else."""
    user = deps.current_user()
    if not is_admin(user, deps.settings(), deps.admin_claim(), deps.verified_email()):
        raise NotAnOperator("this needs an operator account")
    return user


def admin_actions() -> AdminActions:
    return deps.services().admin_actions


def _request(reason: object = "") -> ActionRequest:
    key = request.headers.get("Idempotency-Key")
    text = reason if isinstance(reason, str) else ""
    return ActionRequest(key or uuid.uuid4().hex, text, keyed=key is not None)


@bp.post("/grants")
def grant() -> Response:
    admin = operator()
    body = deps.json_body()
    target = deps.services().transfers.recipient(body.get("user"))
    amount = validate_amount(body.get("amount"))  # this endpoint only grants
    result = admin_actions().adjust(admin, target, amount, _request(body.get("reason")))
    details = result.audit.details
    return jsonify(
        success=True,
        transaction_id=details["transaction_id"],
        user_id=target.id,
        balance=details["balance_after"],
    )


@bp.post("/refunds")
def refund() -> Response:
    admin = operator()
    body = deps.json_body()
    amount = body.get("amount")
    result = admin_actions().refund(
        admin,
        str(body.get("purchase_id", "")),
        _request(body.get("reason")),
        amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        body.get("force") is True,
    )
    details = result.audit.details
    return jsonify(
        success=True,
        refund_id=details["refund_id"],
        amount=details["amount"],
        max_covered=details["max_covered"],
        unspent_tokens=details["unspent_tokens"],
    )


@bp.get("/purchases/<purchase_id>")
def purchase(purchase_id: str) -> Response:
    operator()
    return jsonify(success=True, purchase=deps.services().views.purchase(purchase_id).to_dict())
