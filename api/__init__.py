"""HTTP layer: blueprints parse input, call one service method, map the result."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from api.health import bp as health_bp
    from api.tokens import bp as tokens_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(tokens_bp)
