"""Liveness and readiness probes for Cloud Run and load balancers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api import deps

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up; touches nothing else."""
    return jsonify(success=True, status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """The store answers; a StorageError becomes a 503 through the error handler."""
    deps.ledger().store.ping()
    return jsonify(success=True, status="ready", store=deps.settings().store_url.split(":", 1)[0])
