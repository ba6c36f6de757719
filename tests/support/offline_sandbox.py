"""The sandbox gateway for tests that drive it directly: no webhook deliveries, and
any HTTP POST fails the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import load_settings
from services.payments.sandbox import SandboxPayments


def offline_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], float]
) -> SandboxPayments:
    def no_http(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("SANDBOX_WEBHOOKS=off must not POST")

    monkeypatch.setattr(requests, "post", no_http)
    settings = load_settings(
        {"SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"), "SANDBOX_WEBHOOKS": "off"}
    )
    return SandboxPayments(settings, clock=clock)
