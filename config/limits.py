"""Request limits: how many writes a user, or a signed-out address, may send.

Each group is a Flask-Limiter limit string ("30 per minute;300 per hour"),
read from the environment and checked at start-up. ``RATELIMIT_STORAGE_URI``
chooses where the counts live: each process's memory by default, or a shared
Redis (e.g. Memorystore) so that several instances spend one budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse_many

from services.payments.model import PurchaseLimits

DEFAULT_STORAGE_URI = "memory://"
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")
DAY_S = 24 * 3600
MAX_PROXY_HOPS = 5


@dataclass(frozen=True)
class RateLimits:
    # Per address: dev sign-in, the sign-in form, and the Firebase token exchange.
    signin: str = "30 per minute;300 per hour"
    # Per user: spend, transfer (tips), holds and their capture and release.
    writes: str = "120 per minute;2000 per hour"
    # Per user: checkout sessions and payment intents. Looser than the purchase
    # limits (5 an hour, 20 a day), so a buyer meets those, with their own message.
    checkout: str = "20 per minute;100 per hour"
    # Per operator: grants, adjustments, refunds, approvals, acknowledgements.
    admin: str = "60 per minute;1000 per hour"
    storage_uri: str = DEFAULT_STORAGE_URI
    # Proxies in front of the app that append to X-Forwarded-For: Cloud Run's front end
    # is one (the default in production); 0 trusts only the socket's peer address.
    proxy_hops: int = 0


# Group name -> environment variable.
VARIABLES = {
    "signin": "RATELIMIT_SIGNIN",
    "writes": "RATELIMIT_WRITES",
    "checkout": "RATELIMIT_CHECKOUT",
    "admin": "RATELIMIT_ADMIN",
}


def _items(name: str, value: str, problems: list[str]) -> list[RateLimitItem]:
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        problems.append(f'{name} must be limits like "30 per minute;300 per hour", got {value!r}')
        return []
    return items


def _checkout_problems(items: list[RateLimitItem], purchases: PurchaseLimits) -> list[str]:
    """A request limit tighter than the purchase limits would refuse a buyer they allow."""
    problems = []
    for item in items:
        allowed = purchases.per_day if item.get_expiry() >= DAY_S else purchases.per_hour
        if item.amount < allowed:
            problems.append(
                f"RATELIMIT_CHECKOUT {item} is tighter than the purchase limits "
                f"({purchases.per_hour} an hour, {purchases.per_day} a day)"
            )
    return problems


def _storage_uri(raw: str, problems: list[str]) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in STORAGE_SCHEMES:
        problems.append(
            f"RATELIMIT_STORAGE_URI must be memory:// or a redis:// URI, got scheme {scheme!r}"
        )
        return DEFAULT_STORAGE_URI
    return raw


def _proxy_hops(raw: str | None, production: bool, problems: list[str]) -> int:
    value = (raw or "").strip() or ("1" if production else "0")
    if value.isascii() and value.isdigit() and int(value) <= MAX_PROXY_HOPS:
        return int(value)
    problems.append(f"RATELIMIT_PROXY_HOPS must be a number from 0 to {MAX_PROXY_HOPS}")
    return 0


def load_rate_limits(
    env: Mapping[str, str], problems: list[str], production: bool = False
) -> RateLimits:
    defaults = RateLimits()
    values = {
        group: (env.get(variable) or "").strip() or str(getattr(defaults, group))
        for group, variable in VARIABLES.items()
    }
    for group, value in values.items():
        items = _items(VARIABLES[group], value, problems)
        if group == "checkout":
            problems.extend(_checkout_problems(items, PurchaseLimits()))
    storage = _storage_uri(
        (env.get("RATELIMIT_STORAGE_URI") or "").strip() or DEFAULT_STORAGE_URI, problems
    )
    hops = _proxy_hops(env.get("RATELIMIT_PROXY_HOPS"), production, problems)
    return RateLimits(**values, storage_uri=storage, proxy_hops=hops)
