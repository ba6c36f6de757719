"""After payment: the success page (hosted checkout or embedded payment) and the cancel page."""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request

from api import deps
from api.purchases import own_purchase
from api.redirects import signin_required
from services.errors import PurchaseNotFound
from services.payments.model import OPEN_STATES, Purchase, User
from services.payments.port import PaymentsError

log = logging.getLogger("token_store.pages")
bp = Blueprint("purchase", __name__)


def _from_session(user: User, session_id: str) -> Purchase:
    """Fulfils through the same function as the webhook, so a late webhook costs nothing."""
    services = deps.services()
    purchase = own_purchase(user, services.store.find_purchase(session_id=session_id))
    try:
        session = services.payments.retrieve_session(session_id)
    except PaymentsError as exc:  # the webhook still credits it; the page polls meanwhile
        log.warning("success page: cannot retrieve session for %s: %s", purchase.id, exc)
        return purchase
    return services.fulfilment.fulfil_session(session) or purchase


def _from_payment_intent(user: User, payment_intent_id: str) -> Purchase:
    services = deps.services()
    purchase = own_purchase(user, services.store.find_purchase(payment_intent_id=payment_intent_id))
    try:
        intent = services.payments.retrieve_payment_intent(payment_intent_id)
    except PaymentsError as exc:
        log.warning("success page: cannot retrieve payment intent for %s: %s", purchase.id, exc)
        return purchase
    return services.fulfilment.fulfil_payment_intent(intent) or purchase


@bp.get("/token-purchase-success")
@signin_required()
def purchase_success() -> str:
    user = deps.current_user()
    session_id = request.args.get("session_id", "").strip()
    payment_intent_id = request.args.get("payment_intent", "").strip()
    if session_id:
        purchase = _from_session(user, session_id)
    elif payment_intent_id:
        purchase = _from_payment_intent(user, payment_intent_id)
    else:
        raise PurchaseNotFound("this page needs the payment's reference; see your history")
    services = deps.services()
    return render_template(
        "success.html",
        purchase=purchase,
        pack=services.settings.catalog.get(purchase.pack_id),
        account=services.ledger.balance(user.id),
        confirming=purchase.state in OPEN_STATES,
        gift=purchase.user_id != user.id,
    )


@bp.get("/token-purchase-cancel")
def purchase_cancel() -> str:
    return render_template("cancel.html")
