"""One settings object, read from the environment once and validated at start-up.

``load_settings`` collects every problem before failing, so an operator
fixes a bad deployment in one pass instead of one restart per mistake.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from config.catalog import Catalog, load_catalog
from config.errors import ConfigError
from config.hardening import bind_problems, production_problems, stripe_mode_problems
from config.limits import RateLimits, load_rate_limits
from config.sessions import SessionPolicy, load_session_policy

APP_ENVS = ("development", "test", "production")
DEFAULT_STORE_URL = "sqlite:///instance/tokens.db"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
MAX_SIGNUP_BONUS = 1_000_000
DEFAULT_CLAWBACK_WINDOW_S = 30 * 86_400
MAX_CLAWBACK_WINDOW_S = 366 * 86_400
# Development-only values, documented in the README. Production refuses them.
DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105
DEV_WEBHOOK_SECRET = "whsec_token_store_development_only"  # noqa: S105
# The auth domain goes into the Content-Security-Policy, so only a bare host name is allowed.
HOST_NAME = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
PAYMENT_LINK_ID = re.compile(r"^plink_[A-Za-z0-9_]{1,200}$")


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    store_url: str = DEFAULT_STORE_URL
    secret_key: str = DEV_SECRET_KEY
    stripe_secret_key: str | None = None
    webhook_secrets: tuple[str, ...] = (DEV_WEBHOOK_SECRET,)
    firebase_project_id: str | None = None
    app_base_url: str = DEFAULT_BASE_URL
    catalog_file: str | None = None
    sandbox_db_path: str = "instance/sandbox.db"
    stripe_api_base: str | None = None  # another Stripe-compatible API, for tests
    signup_bonus: int = 0  # tokens granted to every new account
    sandbox_webhooks: bool = True  # False: the sandbox records events but never sends them
    operator_emails: frozenset[str] = frozenset()  # signed-in users allowed on /admin/api
    admin_user_ids: frozenset[str] = frozenset()  # users allowed on /admin, by user id
    stripe_publishable_key: str | None = None  # Stripe.js in the browser (embedded payment)
    firebase_web_api_key: str | None = None  # the Firebase JS SDK's public key (sign-in page)
    firebase_auth_domain: str | None = None  # default: <FIREBASE_PROJECT_ID>.firebaseapp.com
    catalog: Catalog = field(default_factory=lambda: load_catalog(None), compare=False)
    rate_limits: RateLimits = field(default_factory=RateLimits)  # config/limits.py
    sessions: SessionPolicy = field(default_factory=SessionPolicy)  # config/sessions.py
    # An actionable early fraud warning refunds its payment; off: an alert only.
    early_fraud_warning_refunds: bool = True
    payment_links: frozenset[str] = frozenset()  # Payment Link ids whose sessions are adopted
    # How far back a clawback follows the buyer's transfers (services/payments/clawback_chain.py).
    clawback_window_s: int = DEFAULT_CLAWBACK_WINDOW_S

    @property
    def payments_mode(self) -> str:
        """ "stripe" with a secret key, else the built-in sandbox."""
        return "stripe" if self.stripe_secret_key else "sandbox"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def stripe_livemode(self) -> bool:
        """The ``livemode`` of the events this deployment's key can receive (sandbox: test)."""
        return str(self.stripe_secret_key or "").startswith(("sk_live_", "rk_live_"))


def _port(raw: str, problems: list[str]) -> int:
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    problems.append(f"PORT must be a number from 1 to 65535, got {raw!r}")
    return 8080


def _on_off(name: str, raw: str | None, problems: list[str]) -> bool:
    value = (raw or "on").strip().lower()
    if value not in ("on", "off"):
        problems.append(f"{name} must be on or off, got {raw!r}")
    return value != "off"


def _payment_links(raw: str | None, problems: list[str]) -> frozenset[str]:
    links = frozenset(link.strip() for link in (raw or "").split(",") if link.strip())
    odd = sorted(link for link in links if not PAYMENT_LINK_ID.match(link))
    if odd:
        problems.append(f"PAYMENT_LINKS must list Payment Link ids (plink_...), got {odd!r}")
    return links


def _clawback_window(raw: str, problems: list[str]) -> int:
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_CLAWBACK_WINDOW_S:
        return int(raw)
    problems.append(
        f"CLAWBACK_WINDOW_S must be a whole number of seconds from 0 to {MAX_CLAWBACK_WINDOW_S},"
        f" got {raw!r}"
    )
    return DEFAULT_CLAWBACK_WINDOW_S


def _signup_bonus(raw: str, problems: list[str]) -> int:
    if raw.isdigit() and int(raw) <= MAX_SIGNUP_BONUS:
        return int(raw)
    problems.append(
        f"SIGNUP_BONUS must be a whole number from 0 to {MAX_SIGNUP_BONUS}, got {raw!r}"
    )
    return 0


def _publishable_key(raw: str | None, problems: list[str]) -> str | None:
    if not raw:
        return None
    if not raw.startswith("pk_"):
        problems.append("STRIPE_PUBLISHABLE_KEY must be a Stripe publishable key (pk_...)")
    return raw


def _auth_domain(raw: str | None, project_id: str | None, problems: list[str]) -> str | None:
    if not raw:
        return f"{project_id}.firebaseapp.com" if project_id else None
    if not HOST_NAME.match(raw):
        problems.append(f"FIREBASE_AUTH_DOMAIN must be a host name, got {raw!r}")
        return None
    return raw


def _check_store_url(url: str, problems: list[str]) -> None:
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return
    if url.startswith("firestore://") and len(url) > len("firestore://"):
        return
    problems.append(f"STORE_URL must be sqlite:///<path> or firestore://<project-id>, got {url!r}")


def _check_base_url(url: str, problems: list[str]) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        problems.append(f"APP_BASE_URL must be an http(s) URL, got {url!r}")


def _production_problems(settings: Settings, env: Mapping[str, str]) -> list[str]:
    problems = []
    if settings.payments_mode == "sandbox":
        problems.append(
            "STRIPE_SECRET_KEY is not set: production cannot use sandbox payments "
            "(the sandbox also enables dev sign-in)"
        )
    if settings.secret_key == DEV_SECRET_KEY:
        problems.append("SECRET_KEY is not set: production needs its own random secret key")
    if not env.get("STRIPE_WEBHOOK_SECRET"):
        problems.append(
            "STRIPE_WEBHOOK_SECRET is not set: production needs Stripe's endpoint secret"
        )
    if settings.store_url.startswith("sqlite:"):
        problems.append(
            "STORE_URL is SQLite: Cloud Run's disk is ephemeral, use firestore://<project-id>"
        )
    if not settings.firebase_project_id:
        problems.append(
            "FIREBASE_PROJECT_ID is not set: production signs users in with Firebase Authentication"
        )
    if env.get("TOKEN_STORE_FAULTS", "").strip():
        problems.append("TOKEN_STORE_FAULTS is set: fault injection is for the crash tests only")
    problems.extend(
        production_problems(env, settings.secret_key, DEV_SECRET_KEY, DEV_WEBHOOK_SECRET)
    )
    return problems


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); ConfigError lists problems."""
    env = os.environ if env is None else env
    problems: list[str] = []
    app_env = env.get("APP_ENV", "development")
    if app_env not in APP_ENVS:
        problems.append(f"APP_ENV must be one of {', '.join(APP_ENVS)}, got {app_env!r}")
    store_url = env.get("STORE_URL") or DEFAULT_STORE_URL
    _check_store_url(store_url, problems)
    port = _port(env.get("PORT", "8080"), problems)
    # In development the app's own links and the sandbox's webhooks follow PORT.
    base_url = env.get("APP_BASE_URL") or f"http://127.0.0.1:{port}"
    _check_base_url(base_url, problems)
    secrets = tuple(s.strip() for s in env.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip())
    catalog_file = env.get("TOKEN_CATALOG_FILE") or None
    try:
        catalog = load_catalog(catalog_file)
    except ConfigError as exc:
        problems.append(str(exc))
        catalog = load_catalog(None)
    project_id = env.get("FIREBASE_PROJECT_ID") or None
    settings = Settings(
        app_env=app_env,
        store_url=store_url,
        secret_key=env.get("SECRET_KEY") or DEV_SECRET_KEY,
        stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
        webhook_secrets=secrets or (DEV_WEBHOOK_SECRET,),
        firebase_project_id=project_id,
        app_base_url=base_url.rstrip("/"),
        catalog_file=catalog_file,
        sandbox_db_path=env.get("SANDBOX_DB_PATH") or "instance/sandbox.db",
        stripe_api_base=env.get("STRIPE_API_BASE") or None,
        signup_bonus=_signup_bonus(env.get("SIGNUP_BONUS", "0"), problems),
        sandbox_webhooks=_on_off("SANDBOX_WEBHOOKS", env.get("SANDBOX_WEBHOOKS"), problems),
        operator_emails=frozenset(
            e.strip().lower() for e in env.get("OPERATOR_EMAILS", "").split(",") if e.strip()
        ),
        admin_user_ids=frozenset(
            u.strip() for u in env.get("ADMIN_USER_IDS", "").split(",") if u.strip()
        ),
        stripe_publishable_key=_publishable_key(env.get("STRIPE_PUBLISHABLE_KEY"), problems),
        firebase_web_api_key=env.get("FIREBASE_WEB_API_KEY") or None,
        firebase_auth_domain=_auth_domain(env.get("FIREBASE_AUTH_DOMAIN"), project_id, problems),
        catalog=catalog,
        rate_limits=load_rate_limits(env, problems, production=app_env == "production"),
        sessions=load_session_policy(env, problems),
        early_fraud_warning_refunds=_on_off(
            "EARLY_FRAUD_WARNING_REFUNDS", env.get("EARLY_FRAUD_WARNING_REFUNDS"), problems
        ),
        payment_links=_payment_links(env.get("PAYMENT_LINKS"), problems),
        clawback_window_s=_clawback_window(
            env.get("CLAWBACK_WINDOW_S", str(DEFAULT_CLAWBACK_WINDOW_S)), problems
        ),
    )
    if settings.is_production:
        problems.extend(_production_problems(settings, env))
    else:  # production names a missing webhook secret itself
        problems.extend(stripe_mode_problems(env))
    problems.extend(bind_problems(env))
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return settings
