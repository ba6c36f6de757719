"""Sign-in routes. /auth/dev-login exists only in sandbox mode.

Every way in ends in ``start_session``: the old session (and its CSRF
token) is dropped first, so a session planted before sign-in is useless.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, jsonify, redirect, request, session
from flask_wtf.csrf import generate_csrf

from api.http import csrf, deps
from services.auth import BearerIdentity
from services.errors import NotSignedIn
from services.payments.model import User

bp = Blueprint("auth", __name__, url_prefix="/auth")
dev_bp = Blueprint("dev_auth", __name__, url_prefix="/auth")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def start_session(
    user: User,
    source: str = "dev",
    identity: BearerIdentity | None = None,
) -> None:
    """A fresh server-side session; the cookie carries only its random secret.

    The old session (and its CSRF token) is dropped first. Dev sign-in (sandbox
    only) trusts the address typed in, which is what dev sign-in is for; a
    Firebase session keeps the claim and verified email of its sign-in until
    the next re-check (SESSION_RECHECK_SECONDS).
    """
    old = session.get("sid")
    if isinstance(old, str):
        deps.services().sessions.end(old)
    session.clear()
    secret = deps.services().sessions.start(
        user.id,
        source,
        signed_in_at=identity.signed_in_at if identity else 0,
        admin_claim=identity.admin_claim if identity else False,
        operator_email=identity.verified_email if identity else user.email,
    )
    session["sid"] = secret
    session["user_id"] = user.id  # app.py's CSRF check looks for a cookie session by it
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
    services = deps.services()
    identity = services.auth.verify_sign_in(
        token.strip(), services.settings.sessions.sign_in_max_age_s
    )
    start_session(identity.user, "firebase", identity)
    user = identity.user
    return jsonify(success=True, user=user.public(), csrf_token=generate_csrf())


@bp.get("/csrf")
def csrf_token() -> Response:
    return jsonify(success=True, csrf_token=generate_csrf())


@bp.post("/logout")
def logout() -> Response:
    """Ends the session on the server, so every copy of the cookie stops working.

    JSON callers get JSON; the header's plain form goes back to the sign-in page."""
    secret = session.get("sid")
    if isinstance(secret, str):
        deps.services().sessions.end(secret)
    session.clear()
    if request.mimetype in FORM_TYPES:
        return cast(Response, redirect("/signin?signed_out=1", code=303))
    return jsonify(success=True)


@bp.get("/me")
def me() -> Response:
    return jsonify(success=True, user=deps.current_user().public())
