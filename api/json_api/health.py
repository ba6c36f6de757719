"""Liveness and readiness probes for Cloud Run and load balancers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.http import deps
from config import Settings
from config.settings import DEV_WEBHOOK_SECRET

bp = Blueprint("health", __name__)


def missing_production_settings(settings: Settings) -> list[str]:
    """Names of the Stripe settings production cannot take payments without.

    Read from the settings alone: a probe runs every few seconds and must not
    call Stripe. Start-up refuses these already; the probe keeps an instance
    out of traffic if one is ever built without them.
    """
    if not settings.is_production:
        return []
    missing = []
    if not settings.stripe_secret_key:
        missing.append("STRIPE_SECRET_KEY")
    if not [s for s in settings.webhook_secrets if s and s != DEV_WEBHOOK_SECRET]:
        missing.append("STRIPE_WEBHOOK_SECRET")
    return missing


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up; touches nothing else."""
    return jsonify(success=True, status="ok")


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    """Production's Stripe settings are present and the store answers; else 503.

    A StorageError from the store's ping becomes a 503 ``storage_unavailable``
    through the error handler.
    """
    settings = deps.settings()
    missing = missing_production_settings(settings)
    if missing:
        body = jsonify(
            success=False,
            error=f"not ready: {', '.join(missing)} not configured",
            code="not_configured",
            missing=missing,
        )
        return body, 503
    deps.ledger().store.ping()
    return jsonify(
        success=True,
        status="ready",
        store=settings.store_url.split(":", 1)[0],
        payments=settings.payments_mode,
    )
