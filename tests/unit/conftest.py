"""Fixtures of the sandbox gateway's unit tests: a gateway that sends no HTTP, on a
clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.payments.sandbox import SandboxPayments
from tests.support.offline_sandbox import offline_sandbox

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
    return offline_sandbox(tmp_path, monkeypatch, clock)
