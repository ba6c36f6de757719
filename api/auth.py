"""Sign-in routes. /auth/dev-login exists only in sandbox mode."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, session
from flask_wtf.csrf import generate_csrf

from api import deps

bp = Blueprint("auth", __name__, url_prefix="/auth")
dev_bp = Blueprint("dev_auth", __name__, url_prefix="/auth")


@dev_bp.post("/dev-login")
def dev_login() -> Response:
    body = deps.json_body()
    user = deps.services().auth.dev_login(body.get("email"), body.get("username"))
    session.clear()
    session["user_id"] = user.id
    session.permanent = True
    return jsonify(success=True, user=user.public(), csrf_token=generate_csrf())


@bp.get("/csrf")
def csrf_token() -> Response:
    return jsonify(success=True, csrf_token=generate_csrf())


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return jsonify(success=True)


@bp.get("/me")
def me() -> Response:
    return jsonify(success=True, user=deps.current_user().public())
