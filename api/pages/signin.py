"""/signin: the sandbox's development form, or Firebase Authentication in the browser."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, current_app, redirect, render_template, request
from werkzeug.exceptions import NotFound

from api.http import csrf, deps
from api.http.redirects import safe_next
from api.http.security_headers import EMULATOR_ORIGIN_CONFIG, uses_firebase_js
from api.json_api.auth import start_session
from services.errors import DomainError

bp = Blueprint("signin", __name__)


def dev_signin_enabled() -> bool:
    return deps.settings().payments_mode == "sandbox"


def render_signin(
    next_path: str, error: str | None = None, email: str = "", username: str = ""
) -> str:
    settings = deps.settings()
    return render_template(
        "signin.html",
        next_path=next_path,
        error=error,
        email=email,
        username=username,
        dev_signin=dev_signin_enabled(),
        firebase=uses_firebase_js(settings),
        auth_emulator=current_app.config[EMULATOR_ORIGIN_CONFIG],
        settings=settings,
        signed_out=request.args.get("signed_out") == "1",
    )


@bp.get("/signin")
def signin_page() -> str:
    return render_signin(safe_next(request.args.get("next")))


@bp.post("/signin")
def dev_signin() -> Response | tuple[str, int]:
    """Development sign-in: no password, so it exists only with the payment sandbox."""
    if not dev_signin_enabled():
        raise NotFound("development sign-in exists only in sandbox mode")
    # No signed-in session yet, so app.py's automatic check would not run.
    csrf.protect()
    next_path = safe_next(request.form.get("next"))
    email = request.form.get("email", "").strip()
    username = request.form.get("username", "").strip()
    try:
        user = deps.services().auth.dev_login(email, username or None)
    except DomainError as exc:
        return render_signin(next_path, exc.message, email, username), exc.http_status
    start_session(user)
    return cast(Response, redirect(next_path, code=303))
