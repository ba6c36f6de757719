"""The operator's dashboard (/admin) and JSON API (/admin/api), for admins only."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from api.admin.operator_api import bp as operator_api_bp
    from api.admin.pages import bp as pages_bp

    app.register_blueprint(operator_api_bp)
    app.register_blueprint(pages_bp)
