"""Settings are read once from the environment and every problem is named."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import DEV_WEBHOOK_SECRET, load_settings

PRODUCTION = {
    "APP_ENV": "production",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b",
    "SECRET_KEY": "a-real-random-secret-of-32-or-more-chars",
    "STORE_URL": "firestore://my-project",
    "FIREBASE_PROJECT_ID": "my-project",
    "APP_BASE_URL": "https://tokens.example.com/",
}


def test_defaults_are_the_development_sandbox() -> None:
    settings = load_settings({})
    assert settings.payments_mode == "sandbox"
    assert settings.store_url == "sqlite:///instance/tokens.db"
    assert settings.webhook_secrets == (DEV_WEBHOOK_SECRET,)
    assert settings.app_base_url == "http://127.0.0.1:8080"


def test_a_complete_production_environment_is_accepted() -> None:
    settings = load_settings(PRODUCTION)
    assert settings.payments_mode == "stripe"
    assert settings.webhook_secrets == ("whsec_a", "whsec_b")
    assert settings.app_base_url == "https://tokens.example.com"


def test_production_names_every_unsafe_default_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"APP_ENV": "production"})
    message = str(caught.value)
    for name in (
        "STRIPE_SECRET_KEY",
        "SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STORE_URL",
        "FIREBASE_PROJECT_ID",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be"),
        ({"PORT": "70000"}, "PORT must be"),
        ({"STORE_URL": "postgres://x"}, "STORE_URL must be"),
        ({"STORE_URL": "firestore://"}, "STORE_URL must be"),
        ({"APP_BASE_URL": "localhost:8080"}, "APP_BASE_URL must be"),
        ({"APP_ENV": "staging"}, "APP_ENV must be"),
        ({"TOKEN_CATALOG_FILE": "/nonexistent/catalog.json"}, "TOKEN_CATALOG_FILE"),
    ],
)
def test_bad_values_are_refused_with_their_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_the_base_url_follows_port_unless_it_is_set() -> None:
    """PORT=9000 alone must not send the sandbox's links and webhooks to port 8080."""
    assert load_settings({"PORT": "9000"}).app_base_url == "http://127.0.0.1:9000"
    assert load_settings({}).app_base_url == "http://127.0.0.1:8080"
    chosen = {"PORT": "9000", "APP_BASE_URL": "https://tokens.example.com/"}
    assert load_settings(chosen).app_base_url == "https://tokens.example.com"
