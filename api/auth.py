"""Sign-in routes. /auth/dev-login exists only in sandbox mode.

Every way in ends in ``start_session``: the old session (and its CSRF
token) is dropped first, so a session planted before sign-in is useless.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, jsonify, redirect, request, session
from flask_wtf.csrf import generate_csrf

from api import csrf, deps
from services.errors import NotSignedIn
from services.payments.model import User

bp = Blueprint("auth", __name__, url_prefix="/auth")
dev_bp = Blueprint("dev_auth", __name__, url_prefix="/auth")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def start_session(user: User, admin_claim: bool = False) -> None:
    """A fresh session; Firebase's admin claim is kept as it was at sign-in.

    A claim removed later takes effect at the next sign-in (at most the
    session's lifetime); the allow-lists in the settings apply at once.
    """
    session.clear()
    session["user_id"] = user.id
    if admin_claim:
        session["admin_claim"] = True
    session.permanent = True


@dev_bp.post("/dev-login")
def dev_login() -> Response:
    body = deps.json_body()
    user = deps.services().auth.dev_login(body.get("email"), body.get("username"))
    start_session(user)
    return jsonify(success=True, user=user.public(), csrf_token=generate_csrf())


@bp.post("/session")
def firebase_session() -> Response:
    """Exchange a Firebase ID token (verified with firebase-admin) for a session cookie.

    The browser has no session yet, so the CSRF token issued with the sign-in
    page is checked here explicitly: another site cannot sign a visitor in.
    """
    csrf.protect()
    token = deps.json_body().get("id_token")
    if not isinstance(token, str) or not token.strip():
        raise NotSignedIn("send the Firebase ID token as id_token")
    identity = deps.services().auth.verify_bearer(token.strip())
    start_session(identity.user, identity.admin_claim)
    user = identity.user
    return jsonify(success=True, user=user.public(), csrf_token=generate_csrf())


@bp.get("/csrf")
def csrf_token() -> Response:
    return jsonify(success=True, csrf_token=generate_csrf())


@bp.post("/logout")
def logout() -> Response:
    """JSON callers get JSON; the header's plain form goes back to the sign-in page."""
    session.clear()
    if request.mimetype in FORM_TYPES:
        return cast(Response, redirect("/signin?signed_out=1", code=303))
    return jsonify(success=True)


@bp.get("/me")
def me() -> Response:
    return jsonify(success=True, user=deps.current_user().public())
