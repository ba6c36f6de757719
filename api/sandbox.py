"""The sandbox's pages: Stripe's hosted checkout and dashboard, played locally."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from api import deps
from services.errors import InvalidPayload
from services.payments.port import PaymentsError
from services.payments.sandbox import PaymentDeclined, SandboxPayments
from services.payments.sandbox_dashboard import ACTIONS, valid_actions, view

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


def sandbox() -> SandboxPayments:
    return cast(SandboxPayments, deps.services().payments)


@bp.get("/checkout/<session_id>")
def checkout_page(session_id: str) -> str:
    return render_template("sandbox/checkout.html", session=sandbox().retrieve_session(session_id))


@bp.post("/checkout/<session_id>")
def pay(session_id: str) -> Response | tuple[str, int]:
    gateway = sandbox()
    session = gateway.retrieve_session(session_id)
    try:
        if request.form.get("method") == "bank_debit":
            session = gateway.pay_by_bank_debit(session_id)
        else:
            session = gateway.pay_with_card(session_id, request.form.get("card_number", ""))
    except PaymentDeclined as exc:
        page = render_template("sandbox/checkout.html", session=session, error=str(exc))
        return page, 402
    return cast(Response, redirect(session["success_url"], code=303))


@bp.post("/payment-intents/<payment_intent_id>/confirm")
def confirm_payment_intent(payment_intent_id: str) -> Response | tuple[Response, int]:
    """The sandbox's stand-in for Stripe.js confirming an embedded payment."""
    body = deps.json_body()
    card, secret = body.get("card_number"), body.get("client_secret")
    if not isinstance(card, str) or not isinstance(secret, str):
        raise InvalidPayload("card_number and client_secret are required strings")
    not_found = jsonify(success=False, error="no such payment", code="not_found"), 404
    if not secret.isascii():  # issued secrets are ASCII; the constant-time compare takes no other
        return not_found
    try:
        intent = sandbox().confirm_payment_intent(payment_intent_id, card, secret)
    except PaymentDeclined as exc:
        return jsonify(success=False, error=str(exc), code="card_declined"), 402
    except PaymentsError:
        return not_found
    return jsonify(success=True, status=intent["status"], payment_intent_id=intent["id"])


@bp.get("/dashboard")
def dashboard() -> str:
    gateway = sandbox()
    return render_template(
        "sandbox/dashboard.html",
        payments=[view(row) for row in gateway.list_sessions()],
        pending=gateway.pending_deliveries(),
    )


@bp.get("/deliveries")
def deliveries() -> Response:
    """Webhook deliveries not yet acknowledged by the app (tests wait on this).

    ``webhooks`` is "off" when SANDBOX_WEBHOOKS=off withholds every delivery.
    """
    gateway = sandbox()
    return jsonify(
        success=True,
        pending=gateway.pending_deliveries(),
        webhooks="on" if gateway.webhooks_on else "off",
    )


@bp.post("/sessions/<session_id>/<action>")
def act(session_id: str, action: str) -> Response | tuple[str, int]:
    gateway = sandbox()
    if action not in ACTIONS:
        return error_page(404, f"the sandbox has no action {action!r}")
    try:
        payment = gateway.payment(session_id)
    except PaymentsError:
        return error_page(404, f"the sandbox has no payment {session_id!r}")
    if action not in valid_actions(payment):
        return error_page(409, f"a payment in this state cannot {ACTIONS[action].lower()}")
    if action == "settle":
        gateway.settle_bank_debit(session_id, succeeded=True)
    elif action == "fail":
        gateway.settle_bank_debit(session_id, succeeded=False)
    elif action == "expire":
        gateway.expire(session_id)
    elif action == "refund":
        amount = request.form.get("amount", "")
        whole = amount.isascii() and amount.isdigit()  # int() refuses "²", which isdigit() takes
        gateway.refund(session_id, int(amount) if whole else None)
    elif action == "dispute":
        gateway.dispute(session_id)
    return cast(Response, redirect(url_for("sandbox.dashboard"), code=303))


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status
