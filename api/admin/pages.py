"""/admin: the operator's dashboard and user lookup, with forms for each admin action.

Every route here is for admins only (checked before any of them runs):
signed-out visitors go to /signin and come back, everyone else gets 403.
Forms post with the CSRF token and an idempotency key made when the page
was rendered, then redirect back with a status message (post/redirect/get).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import cast

from flask import Blueprint, Response, flash, redirect, render_template, request

from api.admin.chart import revenue_chart
from api.admin.operator_api import admin_actions, operator
from api.http import deps
from api.http.redirects import safe_next, to_signin
from api.json_api.entries import entry_json
from api.pages.context import money
from services.errors import DomainError, NotSignedIn, TokenStoreError
from services.ledger.model import utc_now
from services.operations.actions import ActionRequest, ActionResult
from services.operations.overview import find_user, overview, user_view
from services.payments.model import User
from services.payments.port import PaymentsError

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")
FLASH = "admin"
HOME = "/admin"
TOKENS = re.compile(r"^[+-]?[0-9]{1,12}$")
MINOR_UNITS = re.compile(r"^[0-9]{1,12}$")


@bp.before_request
def admins_only() -> Response | None:
    try:
        deps.current_user()
    except NotSignedIn:
        # A form posted while signed out cannot be replayed; come back to the dashboard.
        return to_signin(None if request.method == "GET" else HOME)
    operator()  # 403 page for everyone who is not an admin
    return None


def new_key() -> str:
    return uuid.uuid4().hex


# -- pages ----------------------------------------------------------------------


@bp.get("")
def dashboard() -> str:
    services = deps.services()
    data = overview(services.store, services.payments, utc_now())
    currency = next((pack.currency for pack in services.settings.catalog), "usd")
    return render_template(
        "admin/dashboard.html",
        data=data,
        chart=revenue_chart(data.sales.days, currency, money),
        new_key=new_key,
    )


@bp.get("/users")
def users() -> str | tuple[str, int]:
    query = request.args.get("q", "").strip()
    if not query:
        return render_template("admin/user.html", query="", view=None, history=[])
    services = deps.services()
    found = find_user(services.store, query)
    if found is None:
        page = render_template("admin/user.html", query=query, view=None, history=[])
        return page, 404
    view = user_view(services.store, services.ledger, found)
    names = deps.services().views.counterparty_names(view.history)
    history = [entry_json(e, names, services.settings.catalog) for e in view.history]
    return render_template(
        "admin/user.html", query=query, view=view, history=history, new_key=new_key
    )


# -- actions --------------------------------------------------------------------


def _form_request() -> ActionRequest:
    return ActionRequest(request.form.get("idempotency_key", ""), request.form.get("reason", ""))


def _back() -> str:
    """Where the form came from: a page of the dashboard, never anywhere else."""
    target = safe_next(request.form.get("back"), default=HOME)
    return target if target == HOME or target.startswith(("/admin/", "/admin?")) else HOME


def _run(action: Callable[[User], ActionResult]) -> Response | tuple[str, int]:
    try:
        result = action(operator())
    except TokenStoreError as exc:
        return _failed(exc.message, exc.http_status)
    except PaymentsError as exc:  # the provider refused or failed; an admin may read why
        return _failed(f"the payment provider said: {exc}", exc.http_status)
    note = " This form was sent before, so nothing more was done." if result.replayed else ""
    flash(result.message + note, FLASH)
    return cast(Response, redirect(_back(), code=303))


def _failed(message: str, status: int) -> tuple[str, int]:
    page = render_template("admin/failed.html", message=message, status=status, back=_back())
    return page, status


def _tokens(text: str) -> int:
    if not TOKENS.match(text.strip()):
        raise DomainError("the amount must be a whole number of tokens, like 25 or -10")
    return int(text.strip())


def _minor_units(text: str) -> int | None:
    """Blank: let the refund plan choose; else a whole number of cents (minor units)."""
    if not text.strip():
        return None
    if not MINOR_UNITS.match(text.strip()):
        raise DomainError("the refund amount must be a whole number of minor units, like 499")
    return int(text.strip())


def _user(user_id: str) -> User:
    return deps.services().views.user(user_id)


@bp.post("/purchases/<purchase_id>/approve")
def approve(purchase_id: str) -> Response | tuple[str, int]:
    return _run(lambda admin: admin_actions().approve(admin, purchase_id, _form_request()))


@bp.post("/purchases/<purchase_id>/refund")
def refund(purchase_id: str) -> Response | tuple[str, int]:
    return _run(
        lambda admin: admin_actions().refund(
            admin,
            purchase_id,
            _form_request(),
            _minor_units(request.form.get("amount", "")),
            request.form.get("force") == "1",
        )
    )


@bp.post("/alerts/<alert_id>/acknowledge")
def acknowledge(alert_id: str) -> Response | tuple[str, int]:
    return _run(lambda admin: admin_actions().acknowledge(admin, alert_id, _form_request()))


@bp.post("/alerts/acknowledge")
def acknowledge_many() -> Response | tuple[str, int]:
    ids = request.form.getlist("alert_id")
    return _run(lambda admin: admin_actions().acknowledge_many(admin, ids, _form_request()))


@bp.post("/users/<user_id>/adjust")
def adjust(user_id: str) -> Response | tuple[str, int]:
    return _run(
        lambda admin: admin_actions().adjust(
            admin, _user(user_id), _tokens(request.form.get("amount", "")), _form_request()
        )
    )
