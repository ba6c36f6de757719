"""Purchase JSON API: start hosted Checkout or an embedded payment, and follow a purchase."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.http import deps
from api.http.conditional import conditional
from services.payments.model import Purchase

bp = Blueprint("purchases", __name__, url_prefix="/api/tokens")


@bp.post("/create-checkout-session")
def create_checkout_session() -> Response:
    user = deps.current_user()
    body = deps.json_body()
    key = request.headers.get("Idempotency-Key")
    gift_to = body.get("gift_recipient")
    recipient = deps.services().transfers.recipient(gift_to) if gift_to else None
    purchase, session = deps.services().checkout.start(user, body.get("package"), key, recipient)
    return jsonify(success=True, session_id=session.id, url=session.url, purchase_id=purchase.id)


@bp.post("/create-payment-intent")
def create_payment_intent() -> Response:
    """The embedded flow: the page confirms the returned intent with its client secret."""
    user = deps.current_user()
    body = deps.json_body()
    key = request.headers.get("Idempotency-Key")
    purchase, intent = deps.services().checkout.start_payment_intent(user, body.get("package"), key)
    return jsonify(
        success=True,
        client_secret=intent.client_secret,
        payment_intent_id=intent.id,
        amount=purchase.amount,
        currency=purchase.currency,
        tokens=purchase.tokens,
        purchase_id=purchase.id,
    )


@bp.get("/purchases/<purchase_id>")
def purchase_status(purchase_id: str) -> Response:
    """What the success page polls until the credit lands."""
    user = deps.current_user()
    purchase = deps.services().views.own_purchase(user, purchase_id)
    balance = deps.ledger().balance(user.id).balance
    return conditional(jsonify(success=True, purchase=purchase_json(purchase), balance=balance))


def purchase_json(purchase: Purchase) -> dict[str, Any]:
    pack = deps.settings().catalog.get(purchase.pack_id)
    return {
        "id": purchase.id,
        "state": str(purchase.state),
        "pack_id": purchase.pack_id,
        "pack_name": pack.name if pack else purchase.pack_id,
        "tokens": purchase.tokens,
        "amount": purchase.amount,
        "currency": purchase.currency,
        "display_price": pack.display_price if pack else None,
        "source": purchase.source,
        "created_at": purchase.created_at,
        "updated_at": purchase.updated_at,
    }
