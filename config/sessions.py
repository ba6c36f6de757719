"""How long a session lives and how often a Firebase session is checked again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HOUR_S = 3600


@dataclass(frozen=True)
class SessionPolicy:
    # Absolute: a session ends this long after sign-in, however much it is used.
    lifetime_s: int = 12 * HOUR_S
    # A Firebase session asks Firebase (auth.get_user) again after this long: a
    # disabled or revoked user, or a removed admin claim, counts within it.
    recheck_s: int = 300
    # /auth/session takes an ID token only this soon after the sign-in (auth_time).
    sign_in_max_age_s: int = 300


def _whole(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    problems.append(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return default


def load_session_policy(env: Mapping[str, str], problems: list[str]) -> SessionPolicy:
    hours = _whole(env, "SESSION_LIFETIME_HOURS", 12, 1, 24 * 30, problems)
    recheck = _whole(env, "SESSION_RECHECK_SECONDS", 300, 0, 3600, problems)
    return SessionPolicy(lifetime_s=hours * HOUR_S, recheck_s=recheck)
