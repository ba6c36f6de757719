"""The sandbox's pages: Stripe's hosted checkout and dashboard, played locally."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from api.http import deps
from services.errors import InvalidPayload
from services.payments.port import PaymentsError
from services.payments.sandbox import AUTHENTICATION_FAILED, PaymentDeclined, SandboxPayments
from services.payments.sandbox_dashboard import ACTIONS, valid_actions, view

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


def sandbox() -> SandboxPayments:
    return cast(SandboxPayments, deps.services().payments)


@bp.get("/checkout/<session_id>")
def checkout_page(session_id: str) -> str:
    # After a failed 3D Secure challenge the buyer lands here again, to try another card.
    failed = request.args.get("authentication") == "failed"
    return render_template(
        "sandbox/checkout.html",
        session=sandbox().retrieve_session(session_id),
        error=AUTHENTICATION_FAILED if failed else None,
    )


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
    if session.get("intent_status") == "requires_action":  # the card asks for 3D Secure
        return cast(Response, redirect(session["next_action"]["redirect_to_url"]["url"], code=303))
    return cast(Response, redirect(session["success_url"], code=303))


@bp.get("/3ds/<payment_id>")
def challenge_page(payment_id: str) -> str | tuple[str, int]:
    """The card issuer's 3D Secure challenge, as Stripe's test page plays it."""
    try:
        payment = sandbox().payment(payment_id)
    except PaymentsError:
        return error_page(404, f"the sandbox has no payment {payment_id!r}")
    token = request.args.get("token", "")
    waiting = payment.get("intent_status") == "requires_action"
    return render_template("sandbox/challenge.html", payment=payment, token=token, waiting=waiting)


@bp.post("/3ds/<payment_id>")
def authenticate(payment_id: str) -> Response | tuple[str, int]:
    gateway = sandbox()
    completed = request.form.get("outcome") == "complete"
    try:
        target = gateway.authenticate(payment_id, request.form.get("token", ""), completed)
    except PaymentsError:
        return error_page(404, "no such 3D Secure challenge")
    if not target:  # a checkout session: back to its page, which says why
        target = url_for("sandbox.checkout_page", session_id=payment_id, authentication="failed")
    return cast(Response, redirect(target, code=303))


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
    return jsonify(
        success=True,
        status=intent["status"],
        payment_intent_id=intent["id"],
        next_action=intent["next_action"],
    )


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
    elif action == "fail_refund":
        gateway.fail_refund(session_id)
    elif action in ("win_dispute", "lose_dispute", "close_inquiry"):
        gateway.close_dispute(session_id, won=action == "win_dispute")
    return cast(Response, redirect(url_for("sandbox.dashboard"), code=303))


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status
