"""The OpenAPI description of the JSON API, served as the file kept at the project root."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"

bp = Blueprint("openapi", __name__, url_prefix="/api")


@bp.get("/openapi.yaml")
def openapi_document() -> Response:
    # Read per request: it is small, rarely fetched, and edits show without a restart.
    return Response(SPEC_PATH.read_bytes(), mimetype="application/yaml")
