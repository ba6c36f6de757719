"""Settings that would let anyone forge sign-ins, credits or sessions are refused at start-up."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import DEV_WEBHOOK_SECRET, load_settings
from tests.unit.test_settings import PRODUCTION


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099"),
        ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8081"),
    ],
)
def test_production_refuses_emulator_hosts(name: str, value: str) -> None:
    # firebase-admin accepts unsigned tokens while the Auth emulator host is set.
    assert name in refusal({**PRODUCTION, name: value})


@pytest.mark.parametrize(
    "secrets", [DEV_WEBHOOK_SECRET, f"whsec_real, {DEV_WEBHOOK_SECRET}", f" {DEV_WEBHOOK_SECRET} "]
)
def test_production_refuses_the_public_development_webhook_secret(secrets: str) -> None:
    message = refusal({**PRODUCTION, "STRIPE_WEBHOOK_SECRET": secrets})
    assert "STRIPE_WEBHOOK_SECRET" in message
    assert "development" in message


@pytest.mark.parametrize("key", ["x", "short-but-not-32-chars-long"])
def test_production_refuses_a_weak_secret_key(key: str) -> None:
    assert "SECRET_KEY" in refusal({**PRODUCTION, "SECRET_KEY": key})


def test_production_accepts_a_32_character_secret_key() -> None:
    assert load_settings({**PRODUCTION, "SECRET_KEY": "k" * 32}).secret_key == "k" * 32


def test_production_names_each_unsafe_setting_in_one_message() -> None:
    env = {
        **PRODUCTION,
        "SECRET_KEY": "x",
        "STRIPE_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
        "FIREBASE_AUTH_EMULATOR_HOST": "localhost:9099",
        "FIRESTORE_EMULATOR_HOST": "localhost:8081",
    }
    message = refusal(env)
    for name in (
        "SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "FIREBASE_AUTH_EMULATOR_HOST",
        "FIRESTORE_EMULATOR_HOST",
    ):
        assert f"- {name}" in message


@pytest.mark.parametrize("app_env", ["development", "test", "production"])
def test_stripe_mode_without_a_webhook_secret_is_refused_in_every_mode(app_env: str) -> None:
    env = {**PRODUCTION, "APP_ENV": app_env}
    del env["STRIPE_WEBHOOK_SECRET"]
    assert "STRIPE_WEBHOOK_SECRET" in refusal(env)


def test_the_sandbox_keeps_the_development_webhook_secret() -> None:
    # The sandbox signs its own events with it; there is nothing to forge there.
    assert load_settings({}).webhook_secrets == (DEV_WEBHOOK_SECRET,)


def test_development_may_use_the_auth_emulator() -> None:
    settings = load_settings({"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"})
    assert settings.payments_mode == "sandbox"
