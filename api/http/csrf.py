"""Explicit CSRF checks for forms posted before a session exists (sign-in)."""

from __future__ import annotations

from flask import current_app


def protect() -> None:
    """Raise CSRFError (HTTP 400) unless the request carries this session's CSRF token.

    app.py checks cookie-authenticated writes automatically; sign-in forms
    have no signed-in session yet, so they call this themselves.
    """
    current_app.extensions["csrf"].protect()
