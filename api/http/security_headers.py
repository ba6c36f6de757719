"""Security headers on every response (pages, JSON, static files) through Flask-Talisman.

The Content-Security-Policy allows only the app's own origin, except on the
two pages that run third-party code: /buy-tokens in Stripe mode (Stripe.js)
and /signin in Firebase mode (the Firebase JS SDK, served by the app itself
from static/vendor/). A cross-site-scripting hole anywhere else cannot load
a script from Google's or Stripe's hosts, several of which serve JSONP that
defeats a CSP that lists them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_talisman import Talisman  # type: ignore[import-untyped]

from config import ConfigError, Settings

SELF = "'self'"
NONE = "'none'"
STRIPE_SCRIPTS = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_FRAMES = (*STRIPE_SCRIPTS, "https://hooks.stripe.com")
STRIPE_API = ("https://api.stripe.com",)
# Google's popup sign-in loads its iframe helper (gapi) from here; the SDK itself is ours.
FIREBASE_SCRIPTS = ("https://apis.google.com",)
FIREBASE_API = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")
# The variable firebase-admin reads: the browser must use the emulator the server trusts.
AUTH_EMULATOR_VARIABLE = "FIREBASE_AUTH_EMULATOR_HOST"
EMULATOR_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$")
# Where the app keeps the emulator's origin, read once: the page and its CSP must agree.
EMULATOR_ORIGIN_CONFIG = "FIREBASE_AUTH_EMULATOR_ORIGIN"
BUY_ENDPOINT = "pages.buy.buy_tokens"
SIGNIN_ENDPOINT = "pages.signin.signin_page"
# Probes reach the container directly over http; they must not be redirected.
PLAIN_HTTP_ENDPOINTS = ("health.healthz", "health.readyz")

Sources = dict[str, tuple[str, ...]]


def uses_stripe_js(settings: Settings) -> bool:
    return settings.payments_mode == "stripe"


def uses_firebase_js(settings: Settings) -> bool:
    """The sandbox signs in with its development form; otherwise Firebase does."""
    return settings.payments_mode != "sandbox" and bool(settings.firebase_project_id)


def auth_emulator_origin(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """``http://host:port`` of the Firebase Auth emulator the sign-in page must use, if any.

    Never in production (start-up refuses the variable there as well): the
    emulator accepts any password and issues unsigned tokens.
    """
    host = (os.environ if env is None else env).get(AUTH_EMULATOR_VARIABLE, "").strip()
    if not host or settings.is_production:
        return None
    if not EMULATOR_HOST.match(host):
        # It goes into the page and the CSP header, so only host:port is accepted.
        raise ConfigError(f"{AUTH_EMULATOR_VARIABLE} must be host:port, got {host!r}")
    return f"http://{host}"


def content_security_policy(extra: Sources | None = None) -> dict[str, str]:
    """This site only, plus ``extra`` sources per directive; frames only when some are added."""
    extra = extra or {}
    scripts = (SELF, *extra.get("script-src", ()))
    connect = (SELF, *extra.get("connect-src", ()))
    frames = extra.get("frame-src", ()) or (NONE,)
    return {
        "default-src": SELF,
        "script-src": " ".join(scripts),
        "style-src": SELF,
        "img-src": f"{SELF} data:",
        "font-src": SELF,
        "connect-src": " ".join(connect),
        "frame-src": " ".join(frames),
        "frame-ancestors": NONE,
        "object-src": NONE,
        "base-uri": SELF,
    }


def stripe_sources() -> Sources:
    """Stripe.js, its Payment Element and 3-D Secure frames, and its API."""
    return {"script-src": STRIPE_SCRIPTS, "frame-src": STRIPE_FRAMES, "connect-src": STRIPE_API}


def firebase_sources(settings: Settings, emulator: str | None) -> Sources:
    """Firebase Auth's APIs, and the auth domain's frame that Google's popup talks through."""
    frames = (f"https://{settings.firebase_auth_domain}",) if settings.firebase_auth_domain else ()
    local = (emulator,) if emulator else ()
    return {
        "script-src": FIREBASE_SCRIPTS,
        "frame-src": (*frames, *local),
        "connect-src": (*FIREBASE_API, *local),
    }


def page_policies(settings: Settings, emulator: str | None) -> dict[str, dict[str, str]]:
    """Endpoint -> its own policy, for the pages that run third-party JavaScript."""
    policies = {}
    if uses_stripe_js(settings):
        policies[BUY_ENDPOINT] = content_security_policy(stripe_sources())
    if uses_firebase_js(settings):
        policies[SIGNIN_ENDPOINT] = content_security_policy(firebase_sources(settings, emulator))
    return policies


def set_view_options(app: Flask, endpoint: str, options: dict[str, Any]) -> None:
    """Talisman's per-view options for ``endpoint`` in this app only.

    Talisman reads them from an attribute of the view function (its decorator
    sets it); the functions are shared by every app built in one process (the
    tests build many), so each app gets its own wrapper carrying its options.
    """
    view = app.view_functions[endpoint]  # a renamed endpoint fails here, at start-up

    @functools.wraps(view)
    def own(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    # A fresh dict: wraps() copied the wrapped function's, which Talisman fills in.
    setattr(own, "talisman_view_options", dict(options))  # noqa: B010
    app.view_functions[endpoint] = own


def install_security_headers(app: Flask, settings: Settings) -> None:
    """HSTS and the https redirect only when the app is served over https."""
    https = settings.app_base_url.startswith("https://")
    # One Talisman per app: it keeps its options on itself, and tests build many apps.
    app.extensions["talisman"] = Talisman(
        app,
        content_security_policy=content_security_policy(),
        force_https=https,
        strict_transport_security=https,
        session_cookie_secure=https,
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        x_content_type_options=True,
    )
    emulator = auth_emulator_origin(settings) if uses_firebase_js(settings) else None
    app.config[EMULATOR_ORIGIN_CONFIG] = emulator
    for endpoint, policy in page_policies(settings, emulator).items():
        set_view_options(app, endpoint, {"content_security_policy": policy})
    for endpoint in PLAIN_HTTP_ENDPOINTS:
        set_view_options(app, endpoint, {"force_https": False})
