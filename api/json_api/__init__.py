"""The JSON API under /api (tokens, purchases, usage, sign-in) and the Stripe webhook."""

from __future__ import annotations

from flask import Flask


def register(app: Flask, sandbox: bool) -> None:
    from api.json_api.auth import bp as auth_bp
    from api.json_api.auth import dev_bp
    from api.json_api.health import bp as health_bp
    from api.json_api.openapi import bp as openapi_bp
    from api.json_api.purchases import bp as purchases_bp
    from api.json_api.tokens import bp as tokens_bp
    from api.json_api.usage import bp as usage_bp
    from api.json_api.webhook import bp as webhook_bp

    for blueprint in (
        health_bp,
        tokens_bp,
        usage_bp,
        purchases_bp,
        webhook_bp,
        auth_bp,
        openapi_bp,
    ):
        app.register_blueprint(blueprint)
    if sandbox:  # development sign-in; in production the route does not exist at all
        app.register_blueprint(dev_bp)
