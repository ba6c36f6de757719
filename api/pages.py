"""Server-rendered pages: purchase success and cancel."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from api import deps
from services.errors import PurchaseNotFound

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html", packs=list(deps.settings().catalog))


@bp.get("/token-purchase-success")
def purchase_success() -> str:
    """Fulfils through the same function as the webhook, so a late webhook costs nothing."""
    services = deps.services()
    user = deps.current_user()
    session_id = request.args.get("session_id", "")
    purchase = services.store.find_purchase(session_id=session_id) if session_id else None
    if purchase is None or user.id not in (purchase.buyer_id, purchase.user_id):
        raise PurchaseNotFound("no purchase of yours has that checkout session")
    session = services.payments.retrieve_session(session_id)
    purchase = services.fulfilment.fulfil_session(session) or purchase
    account = services.ledger.balance(user.id)
    pack = services.settings.catalog.get(purchase.pack_id)
    return render_template("success.html", purchase=purchase, pack=pack, account=account)


@bp.get("/token-purchase-cancel")
def purchase_cancel() -> str:
    return render_template("cancel.html")
