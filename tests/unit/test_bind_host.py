"""The sandbox, with its dev sign-in, listens beyond loopback only when told to."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.hardening import bind_host
from config.settings import load_settings

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the address under test
GUNICORN_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def gunicorn_bind(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[str]:
    for name in ("GUNICORN_HOST", "STRIPE_SECRET_KEY", "ALLOW_SANDBOX_ON_NETWORK", "APP_ENV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bind: list[str] = runpy.run_path(str(GUNICORN_CONF))["bind"]
    return bind


def test_the_image_command_serves_the_sandbox_on_loopback_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Dockerfile's environment on Cloud Run without APP_ENV or a Stripe key.
    assert gunicorn_bind(monkeypatch, {"PORT": "8080"}) == ["127.0.0.1:8080"]
    stripe = {"PORT": "8080", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    assert gunicorn_bind(monkeypatch, stripe) == [f"{EVERY_INTERFACE}:8080"]
    with pytest.raises(ConfigError, match="ALLOW_SANDBOX_ON_NETWORK"):
        gunicorn_bind(monkeypatch, {"GUNICORN_HOST": EVERY_INTERFACE})


def test_the_image_without_app_env_or_stripe_serves_the_sandbox_on_loopback_only() -> None:
    # The Dockerfile's environment: no APP_ENV, no STRIPE_SECRET_KEY, no GUNICORN_HOST.
    assert bind_host({"PORT": "8080"}) == "127.0.0.1"


def test_stripe_mode_listens_on_every_interface_for_cloud_run() -> None:
    env = {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    assert bind_host(env) == EVERY_INTERFACE


def test_the_sandbox_on_the_network_needs_the_explicit_setting() -> None:
    assert bind_host({"ALLOW_SANDBOX_ON_NETWORK": "on"}) == EVERY_INTERFACE
    assert (
        bind_host({"GUNICORN_HOST": EVERY_INTERFACE, "ALLOW_SANDBOX_ON_NETWORK": "on"})
        == EVERY_INTERFACE
    )
    assert bind_host({"GUNICORN_HOST": "::1"}) == "::1"


@pytest.mark.parametrize("host", [EVERY_INTERFACE, "::", "192.168.1.20"])
def test_asking_for_the_network_in_the_sandbox_is_refused_with_its_name(host: str) -> None:
    with pytest.raises(ConfigError, match="ALLOW_SANDBOX_ON_NETWORK"):
        bind_host({"GUNICORN_HOST": host})
    with pytest.raises(ConfigError, match=f"GUNICORN_HOST={host}"):
        load_settings({"GUNICORN_HOST": host})
