"""The site's HTML pages; in development also the payment sandbox's pages."""

from __future__ import annotations

from flask import Flask


def register(app: Flask, sandbox: bool) -> None:
    from api.pages.site import bp as site_bp

    app.register_blueprint(site_bp)
    if sandbox:  # in production these routes do not exist at all
        from api.pages.sandbox import bp as sandbox_bp

        app.register_blueprint(sandbox_bp)
