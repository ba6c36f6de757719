"""The webhook's 300 s tolerance over HTTP, in process, with the app's clock held still.

The clock is the event processor's (the webhook reads it for the signature check),
set years away from the wall clock, so only that clock can decide these cases.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from services.container import Services
from services.payments.events import EventProcessor
from tests.support.clock import Clock
from tests.support.webhooks import WEBHOOK_PATH, delivery

NOW = datetime(2033, 5, 18, 3, 33, 20, tzinfo=UTC)  # 2_000_000_000 s since the epoch


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    made = create_app(
        {
            "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",
            "SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"),
            "SANDBOX_WEBHOOKS": "off",
        }
    )
    services: Services = made.extensions["services"]
    events = EventProcessor(services.store, services.fulfilment, Clock(NOW))
    made.extensions["services"] = dataclasses.replace(services, events=events)
    yield made
    services.store.close()


def deliver(client: FlaskClient, event_id: str, signed_at: int) -> tuple[int, dict[str, object]]:
    body = json.dumps(
        {"id": event_id, "type": "test.ignored", "livemode": False, "data": {"object": {"id": "x"}}}
    )
    payload, headers = delivery(body, timestamp=signed_at)
    response = client.post(WEBHOOK_PATH, data=payload, headers=headers)
    return response.status_code, response.get_json()


@pytest.mark.parametrize("offset", [-300, -299, 299, 300])
def test_an_event_signed_within_300_seconds_is_processed(app: Flask, offset: int) -> None:
    status, body = deliver(app.test_client(), "evt_in_tolerance", int(NOW.timestamp()) + offset)
    assert (status, body["outcome"]) == (200, "ignored")


@pytest.mark.parametrize("offset", [-301, 301])
def test_an_event_signed_further_off_is_refused_and_not_recorded(app: Flask, offset: int) -> None:
    client = app.test_client()
    status, body = deliver(client, "evt_off_tolerance", int(NOW.timestamp()) + offset)
    assert (status, body["code"]) == (400, "bad_signature")
    # The refused delivery recorded nothing: the same event, signed in time, is new.
    status, body = deliver(client, "evt_off_tolerance", int(NOW.timestamp()))
    assert status == 200 and "duplicate" not in body
