"""Server-rendered pages. Each area has its own module and blueprint, nested under this one."""

from __future__ import annotations

from flask import Blueprint, render_template

from api.http import deps
from api.pages import context as page_context
from api.pages.buy import bp as buy_bp
from api.pages.buy import pack_views
from api.pages.history import bp as history_bp
from api.pages.purchase import bp as purchase_bp
from api.pages.signin import bp as signin_bp

bp = Blueprint("pages", __name__)
for child in (signin_bp, buy_bp, purchase_bp, history_bp):
    bp.register_blueprint(child)
page_context.register(bp)


@bp.get("/")
def index() -> str:
    """The packs for anyone, signed in or not; buying happens on /buy-tokens."""
    return render_template("index.html", packs=pack_views(deps.settings().catalog))
