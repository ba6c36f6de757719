"""Browser-side settings: Stripe's publishable key and Firebase's web config."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import load_settings


def test_browser_settings_are_optional_and_default_to_nothing() -> None:
    settings = load_settings({})
    assert settings.stripe_publishable_key is None
    assert settings.firebase_web_api_key is None
    assert settings.firebase_auth_domain is None


def test_the_auth_domain_defaults_to_the_projects_firebaseapp_domain() -> None:
    settings = load_settings({"FIREBASE_PROJECT_ID": "my-project", "FIREBASE_WEB_API_KEY": "k"})
    assert settings.firebase_auth_domain == "my-project.firebaseapp.com"
    assert settings.firebase_web_api_key == "k"


def test_an_explicit_auth_domain_is_kept() -> None:
    env = {"FIREBASE_PROJECT_ID": "p", "FIREBASE_AUTH_DOMAIN": "login.example.com"}
    assert load_settings(env).firebase_auth_domain == "login.example.com"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRIPE_PUBLISHABLE_KEY": "sk_live_oops"}, "STRIPE_PUBLISHABLE_KEY must be"),
        # The domain goes into the Content-Security-Policy: no room for extra sources.
        ({"FIREBASE_AUTH_DOMAIN": "x.example.com; script-src *"}, "FIREBASE_AUTH_DOMAIN must be"),
        ({"FIREBASE_AUTH_DOMAIN": "https://x.example.com"}, "FIREBASE_AUTH_DOMAIN must be"),
    ],
)
def test_bad_browser_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)
