"""Application factory, and the module-level ``app`` that gunicorn serves."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import register_blueprints
from api.errors import register_error_handlers
from config import Settings, load_settings
from services.store import open_store
from services.tokens import TokenLedger

log = logging.getLogger("token_store")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides environment variables by name (tests use it)."""
    overrides = {k: str(v) for k, v in (config or {}).items()}
    settings = load_settings({**os.environ, **overrides})
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["settings"] = settings
    app.extensions["ledger"] = TokenLedger(open_store(settings.store_url))
    register_error_handlers(app)
    register_blueprints(app)
    _announce(settings)
    return app


def _announce(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
