"""Request limits with Flask-Limiter: per signed-in user, and per address when signed out.

Each write route belongs to one group (config/limits.py); a group's routes
share one budget per caller. The Stripe webhook has no limit here: Stripe
must always get through, and a forged webhook fails its signature check at
the cost of one HMAC.
"""

from __future__ import annotations

import logging
import math
import time
from typing import cast

from flask import Flask, Response, request
from flask.typing import RouteCallable
from flask_limiter import Limiter, RateLimitExceeded

from api.http import deps
from api.http.errors import error_response
from config.limits import RateLimits
from services.errors import TokenStoreError

log = logging.getLogger("token_store.limits")
EXTENSION = "token_store_limiter"
# Group -> the endpoints it covers. Sign-in is counted per address (there is no user yet).
GROUPS: dict[str, tuple[str, ...]] = {
    "signin": ("auth.firebase_session", "pages.signin.dev_signin", "dev_auth.dev_login"),
    "writes": (
        "tokens.spend",
        "tokens.transfer",
        "tokens.create_hold",
        "tokens.capture_hold",
        "tokens.release_hold",
        "usage.start_session",
        "usage.charge",
        "usage.top_up",
        "usage.close_session",
        "pages.history.tip",
    ),
    "checkout": (
        "purchases.create_checkout_session",
        "purchases.create_payment_intent",
        "pages.buy.checkout_form",
    ),
    "admin": (
        "admin.grant",
        "admin.refund",
        "admin_pages.approve",
        "admin_pages.refund",
        "admin_pages.acknowledge",
        "admin_pages.acknowledge_many",
        "admin_pages.adjust",
    ),
}
PER_ADDRESS = frozenset({"signin"})
WEBHOOK_ENDPOINT = "stripe_webhook.webhook"


def client_address(proxy_hops: int) -> str:
    """The caller's address: with N trusted proxies, the Nth X-Forwarded-For entry from the end.

    Entries before those are written by the client and prove nothing.
    """
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    if proxy_hops and len(hops) >= proxy_hops:
        return hops[-proxy_hops]
    return request.remote_addr or "unknown"


def _per_address(proxy_hops: int) -> str:
    return "ip:" + client_address(proxy_hops)


def _per_user(proxy_hops: int) -> str:
    """The signed-in user; a caller who is not (or whose token fails) is counted by address."""
    try:
        return "user:" + deps.current_user().id
    except TokenStoreError:
        return _per_address(proxy_hops)


def _is_webhook() -> bool:
    return request.endpoint == WEBHOOK_ENDPOINT


def _limited(limiter: Limiter, exc: RateLimitExceeded) -> tuple[Response, int]:
    current = limiter.current_limit
    # The window's reset time, in whole seconds from now (at least one).
    retry_after = max(1, math.ceil(current.window[0] - time.time())) if current else 60
    log.warning("request limit reached on %s: %s", request.path, exc.description)
    response, status = error_response(
        f"too many requests ({exc.description}); try again in {retry_after} seconds",
        "rate_limited",
        429,
    )
    response.headers["Retry-After"] = str(retry_after)
    return response, status


def install_limits(app: Flask, limits: RateLimits) -> Limiter:
    """Attach each group's limit to its endpoints; call after the blueprints are registered."""
    hops = limits.proxy_hops
    limiter = Limiter(
        key_func=lambda: _per_address(hops),
        app=app,
        storage_uri=limits.storage_uri,
        strategy="fixed-window",
        headers_enabled=False,  # Retry-After goes on the 429 only (below)
        # A shared store that is down must not take the app down: count in memory meanwhile.
        in_memory_fallback_enabled=True,
        key_prefix="token-store",
    )
    # The webhook is never limited (above): the limiter skips it at once instead of
    # working out, on every delivery, that no limit applies to it.
    limiter.request_filter(_is_webhook)
    for group, endpoints in GROUPS.items():
        key = (lambda: _per_address(hops)) if group in PER_ADDRESS else (lambda: _per_user(hops))
        shared = limiter.shared_limit(getattr(limits, group), scope=group, key_func=key)
        for endpoint in endpoints:
            if endpoint in app.view_functions:  # the sandbox's routes exist only in the sandbox
                app.view_functions[endpoint] = cast(
                    RouteCallable, shared(app.view_functions[endpoint])
                )
    app.register_error_handler(RateLimitExceeded, lambda exc: _limited(limiter, exc))
    app.extensions[EXTENSION] = limiter
    return limiter
