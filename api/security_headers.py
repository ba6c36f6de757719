"""Security headers on every response (pages, JSON, static files) through Flask-Talisman.

The Content-Security-Policy allows only the app's own origin in sandbox
mode, so development works offline and nothing third-party runs; Stripe's
and Firebase's origins are added only when those services are configured.
"""

from __future__ import annotations

from flask import Flask
from flask_talisman import Talisman  # type: ignore[import-untyped]

from config import Settings

SELF = "'self'"
STRIPE_SCRIPTS = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_FRAMES = (*STRIPE_SCRIPTS, "https://hooks.stripe.com")
STRIPE_API = ("https://api.stripe.com",)
FIREBASE_SCRIPTS = ("https://www.gstatic.com", "https://apis.google.com")
FIREBASE_API = (
    "https://identitytoolkit.googleapis.com",
    "https://securetoken.googleapis.com",
    "https://www.googleapis.com",
)
# Probes reach the container directly over http; they must not be redirected.
PLAIN_HTTP_ENDPOINTS = ("health.healthz", "health.readyz")


def uses_stripe_js(settings: Settings) -> bool:
    return settings.payments_mode == "stripe"


def uses_firebase_js(settings: Settings) -> bool:
    """The sandbox signs in with its development form; otherwise Firebase does."""
    return settings.payments_mode != "sandbox" and bool(settings.firebase_project_id)


def content_security_policy(settings: Settings) -> dict[str, str]:
    scripts, connect = [SELF], [SELF]
    frames: list[str] = []
    if uses_stripe_js(settings):
        scripts += STRIPE_SCRIPTS
        frames += STRIPE_FRAMES
        connect += STRIPE_API
    if uses_firebase_js(settings):
        scripts += FIREBASE_SCRIPTS
        connect += FIREBASE_API
        if settings.firebase_auth_domain:
            frames.append(f"https://{settings.firebase_auth_domain}")
    return {
        "default-src": SELF,
        "script-src": " ".join(scripts),
        "style-src": SELF,
        "img-src": f"{SELF} data:",
        "font-src": SELF,
        "connect-src": " ".join(connect),
        "frame-src": " ".join(frames) or "'none'",
        "frame-ancestors": "'none'",
        "object-src": "'none'",
        "base-uri": SELF,
    }


def install_security_headers(app: Flask, settings: Settings) -> None:
    """HSTS and the https redirect only when the app is served over https."""
    https = settings.app_base_url.startswith("https://")
    # One Talisman per app: it keeps its options on itself, and tests build many apps.
    app.extensions["talisman"] = Talisman(
        app,
        content_security_policy=content_security_policy(settings),
        force_https=https,
        strict_transport_security=https,
        session_cookie_secure=https,
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        x_content_type_options=True,
    )
    for endpoint in PLAIN_HTTP_ENDPOINTS:
        view = app.view_functions.get(endpoint)
        if view is not None:
            # Talisman reads per-view options from this attribute (its decorator sets it).
            setattr(view, "talisman_view_options", {"force_https": False})  # noqa: B010
