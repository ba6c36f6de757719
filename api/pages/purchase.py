"""After payment: the success page (hosted checkout or embedded payment) and the cancel page."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from api.http import deps
from api.http.redirects import signin_required
from services.errors import PurchaseNotFound
from services.payments.model import OPEN_STATES

bp = Blueprint("purchase", __name__)


@bp.get("/token-purchase-success")
@signin_required()
def purchase_success() -> str:
    user = deps.current_user()
    session_id = request.args.get("session_id", "").strip()
    payment_intent_id = request.args.get("payment_intent", "").strip()
    if session_id:
        purchase = deps.services().views.confirm_session(user, session_id)
    elif payment_intent_id:
        purchase = deps.services().views.confirm_payment_intent(user, payment_intent_id)
    else:
        raise PurchaseNotFound("this page needs the payment's reference; see your history")
    services = deps.services()
    # Back from a failed 3D Secure challenge: nothing was charged and the payment stays
    # open for another card, so there is nothing to wait for (the flag only words the page).
    not_authenticated = (
        bool(payment_intent_id)
        and request.args.get("redirect_status") == "failed"
        and purchase.state in OPEN_STATES
    )
    return render_template(
        "success.html",
        purchase=purchase,
        pack=services.settings.catalog.get(purchase.pack_id),
        account=services.ledger.balance(user.id),
        confirming=purchase.state in OPEN_STATES and not not_authenticated,
        not_authenticated=not_authenticated,
        gift=purchase.user_id != user.id,
    )


@bp.get("/token-purchase-cancel")
def purchase_cancel() -> str:
    return render_template("cancel.html")
