"""HTTP layer: blueprints parse input, call one service method, map the result.

Packages: ``http`` (request plumbing: context, errors, CSRF, limits, security
headers, dependencies), ``json_api`` (the JSON API and the Stripe webhook),
``pages`` (the site's HTML pages, and the sandbox's in development), ``admin``
(the operator's dashboard and JSON API) and ``cli`` (``flask tokens ...``).
Each package registers its own blueprints.
"""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask, sandbox: bool) -> None:
    from api import admin, json_api, pages

    json_api.register(app, sandbox)
    pages.register(app, sandbox)
    admin.register(app)
