"""Signed-event helpers for early fraud warnings, and apps started with extra settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.store import open_store
from tests.integration.conftest import RunningApp
from tests.support.purchases import event
from tests.support.server import AppServer
from tests.support.stripe_fixtures import fixture

StartApp = Callable[[dict[str, str]], RunningApp]


def warning_event(
    payment_intent: str | None, actionable: bool = True, warning_id: str | None = None
) -> dict[str, Any]:
    """``radar.early_fraud_warning.created`` for the charge of ``payment_intent``."""
    warning = fixture(
        "radar.early_fraud_warning",
        id=warning_id or f"issfr_{uuid.uuid4().hex[:20]}",
        actionable=actionable,
        charge=f"ch_{(payment_intent or 'unknown')[3:]}",
        payment_intent=payment_intent,
        fraud_type="made_with_stolen_card",
    )
    return event("radar.early_fraud_warning.created", warning)


def app_starter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartApp]:
    """For a fixture parametrised by store ("sqlite", "firestore"): start apps with extra env."""
    started: list[RunningApp] = []

    def start(env: dict[str, str]) -> RunningApp:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/tokens-{len(started)}.db?busy_timeout_ms=500"
        else:
            request.getfixturevalue("firestore_emulator")
            url = f"firestore://demo-{uuid.uuid4().hex[:12]}"
        server = AppServer({"STORE_URL": url, **env}).start()
        app = RunningApp(server, open_store(url), str(request.param))
        started.append(app)
        return app

    yield start
    for app in started:
        app.store.close()
        app.server.stop()
