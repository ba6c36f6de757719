"""Fixtures of the sandbox gateway's unit tests: a gateway that sends no HTTP, on a
clock the test moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import load_settings
from services.payments.sandbox import SandboxPayments

START = 1_800_000_000


class Clock:
    """The sandbox's clock: seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = float(START)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> SandboxPayments:
    def no_http(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("SANDBOX_WEBHOOKS=off must not POST")

    monkeypatch.setattr(requests, "post", no_http)
    settings = load_settings(
        {"SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"), "SANDBOX_WEBHOOKS": "off"}
    )
    return SandboxPayments(settings, clock=clock)
