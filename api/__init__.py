"""HTTP layer: blueprints parse input, call one service method, map the result."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask, sandbox: bool) -> None:
    from api.admin import bp as admin_bp
    from api.admin_pages import bp as admin_pages_bp
    from api.auth import bp as auth_bp
    from api.auth import dev_bp
    from api.health import bp as health_bp
    from api.openapi import bp as openapi_bp
    from api.pages import bp as pages_bp
    from api.purchases import bp as purchases_bp
    from api.tokens import bp as tokens_bp
    from api.usage import bp as usage_bp
    from api.webhook import bp as webhook_bp

    blueprints = (
        health_bp,
        tokens_bp,
        usage_bp,
        purchases_bp,
        webhook_bp,
        auth_bp,
        pages_bp,
        admin_bp,
        admin_pages_bp,
        openapi_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    if sandbox:  # in production these routes do not exist at all
        from api.sandbox import bp as sandbox_bp

        app.register_blueprint(dev_bp)
        app.register_blueprint(sandbox_bp)
