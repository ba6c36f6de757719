"""Token JSON API."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api import deps

bp = Blueprint("tokens", __name__, url_prefix="/api/tokens")


@bp.get("/packages")
def packages() -> Response:
    catalog = deps.settings().catalog
    return jsonify(success=True, packages=[pack.to_public() for pack in catalog])
