"""Settings that would hand an attacker sign-ins, credits or sessions: refused at start-up.

``load_settings`` adds these problems to its one refusal message;
gunicorn.conf.py asks ``bind_host`` where the app may listen.
"""

from __future__ import annotations

from collections.abc import Mapping

from config.errors import ConfigError

# A SECRET_KEY signs every session cookie: 32 characters is 192 bits or more of
# a random (e.g. `openssl rand -base64 32`) value; a short one can be guessed offline.
MIN_SECRET_KEY_LENGTH = 32
# With these set, firebase-admin accepts unsigned ID tokens (anyone is anyone) and
# the Firestore client talks to an unauthenticated local server.
EMULATOR_HOSTS = ("FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
ALLOW_SANDBOX_ON_NETWORK = "ALLOW_SANDBOX_ON_NETWORK"


def production_problems(
    env: Mapping[str, str], secret_key: str, dev_secret_key: str, dev_webhook_secret: str
) -> list[str]:
    """What production must not start with, beyond missing settings."""
    problems = [
        f"{name} is set: production must not trust an emulator (it accepts forged credentials)"
        for name in EMULATOR_HOSTS
        if env.get(name, "").strip()
    ]
    if secret_key != dev_secret_key and len(secret_key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"SECRET_KEY is weak: production needs a random key of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters"
        )
    if dev_webhook_secret in _webhook_secrets(env):
        problems.append(
            "STRIPE_WEBHOOK_SECRET includes the public development secret: "
            "anyone could sign webhooks with it; use only Stripe's endpoint secrets"
        )
    return problems


def stripe_mode_problems(env: Mapping[str, str]) -> list[str]:
    """In any mode: Stripe payments never fall back to the public development secret."""
    if env.get("STRIPE_SECRET_KEY") and not _webhook_secrets(env):
        return [
            "STRIPE_WEBHOOK_SECRET is not set: Stripe mode (STRIPE_SECRET_KEY) needs "
            "Stripe's endpoint secret; the development secret is public"
        ]
    return []


def _webhook_secrets(env: Mapping[str, str]) -> list[str]:
    return [s.strip() for s in env.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()]


def sandbox_on_network(env: Mapping[str, str]) -> bool:
    """Whether ALLOW_SANDBOX_ON_NETWORK=on lets the sandbox listen beyond loopback."""
    return env.get(ALLOW_SANDBOX_ON_NETWORK, "").strip().lower() == "on"


def bind_problems(env: Mapping[str, str]) -> list[str]:
    """The sandbox (dev sign-in: anyone is anyone) listens on loopback unless allowed."""
    host = env.get("GUNICORN_HOST", "").strip()
    sandbox = not env.get("STRIPE_SECRET_KEY")
    if not sandbox or not host or host in LOOPBACK_HOSTS or sandbox_on_network(env):
        return []
    return [
        f"GUNICORN_HOST={host} would serve the sandbox and its dev sign-in (anyone can sign "
        f"in as anyone) beyond this machine; set {ALLOW_SANDBOX_ON_NETWORK}=on to mean it"
    ]


def bind_host(env: Mapping[str, str]) -> str:
    """Where gunicorn listens: every interface for Stripe mode (Cloud Run), loopback
    for the sandbox unless ALLOW_SANDBOX_ON_NETWORK=on. Raises ConfigError when
    GUNICORN_HOST asks for the network in the sandbox without that setting."""
    problems = bind_problems(env)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    host = env.get("GUNICORN_HOST", "").strip()
    if host:
        return host
    if env.get("STRIPE_SECRET_KEY") or sandbox_on_network(env):
        return "0.0.0.0"  # noqa: S104 - Cloud Run sends requests to every interface
    return "127.0.0.1"
