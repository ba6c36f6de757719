"""Application factory, and the module-level ``app`` that gunicorn serves."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, request, session
from flask_wtf.csrf import CSRFProtect

from api import register_blueprints
from api.cli import register_cli
from api.http.deps import bearer_token
from api.http.errors import register_error_handlers
from api.http.limits import install_limits
from api.http.request_context import install_request_context, log_context
from api.http.security_headers import install_security_headers
from config import Settings, load_settings
from config.logs import configure_logging, log_format, log_project
from services.container import build_services

log = logging.getLogger("token_store")
MAX_BODY_BYTES = 1024 * 1024
# Endpoints that never use the session cookie, so a CSRF token means nothing there.
CSRF_EXEMPT = frozenset({"stripe_webhook.webhook", "dev_auth.dev_login"})
csrf = CSRFProtect()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from ``config`` alone (tests use it).

    A given ``config`` replaces the environment's settings entirely, so a test sees
    what it wrote and not the developer's shell (a STORE_URL or STRIPE_SECRET_KEY
    exported there cannot leak into it)."""
    env = dict(os.environ) if config is None else {k: str(v) for k, v in config.items()}
    configure_logging(log_format(env), log_context)
    settings = load_settings(env)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app_base_url.startswith("https://"),
        # The cookie ends with its server-side session (services/sessions.py): an absolute
        # lifetime, not re-sent on every response, so it never slides.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.sessions.lifetime_s),
        SESSION_REFRESH_EACH_REQUEST=False,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, only for cookie-authenticated calls
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["services"] = build_services(settings)
    csrf.init_app(app)
    install_request_context(app, log_project(env))
    app.before_request(_check_csrf)
    register_error_handlers(app)
    register_blueprints(app, sandbox=settings.payments_mode == "sandbox")
    install_limits(app, settings.rate_limits)
    install_security_headers(app, settings)
    register_cli(app)
    app.context_processor(lambda: {"sandbox_mode": settings.payments_mode == "sandbox"})
    _announce(settings)
    return app


def _check_csrf() -> None:
    """Only cookie-authenticated writes can be forged cross-site; they need the token."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in CSRF_EXEMPT:
        return
    if bearer_token() is None and "user_id" in session:
        csrf.protect()


def _announce(settings: Settings) -> None:
    store_kind = settings.store_url.split(":", 1)[0]
    log.info(
        "token store starting: env=%s store=%s payments=%s packs=%d",
        settings.app_env,
        store_kind,
        settings.payments_mode,
        len(settings.catalog),
    )
    if settings.payments_mode == "sandbox":
        log.warning("payment SANDBOX mode: no real payments; set STRIPE_SECRET_KEY for Stripe")


def _module_app() -> Flask | None:
    # Importing app.py for tests or tooling must not need a valid environment;
    # gunicorn's "app:app" does, and fails there with the configuration message.
    return create_app() if os.environ.get("TOKEN_STORE_NO_MODULE_APP") != "1" else None


app = _module_app()
