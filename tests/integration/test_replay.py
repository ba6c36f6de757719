"""Replaying missed events: `flask tokens replay-events` against the app under gunicorn.

With SANDBOX_WEBHOOKS=off the sandbox records its events but never delivers
them, as if the webhook endpoint had been down; the replay command then lists
them from the gateway and processes them through the webhook's own path.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from services.payments.events import EventProcessor, EventResult
from services.payments.port import PaymentsGateway
from services.replay import ReplayError, replay_events
from tests.support.cli import tokens_in_process
from tests.support.purchases import Buyer
from tests.support.server import AppServer, tokens_cli

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def withheld_app() -> Iterator[AppServer]:
    server = AppServer({"SANDBOX_WEBHOOKS": "off"}).start()
    yield server
    server.stop()


def replay(server: AppServer, *args: str) -> subprocess.CompletedProcess[str]:
    return tokens_cli(server.env, "replay-events", *args)


def outbox(server: AppServer) -> list[dict[str, Any]]:
    """The sandbox's recorded events, read straight from its database."""
    with closing(sqlite3.connect(server.env["SANDBOX_DB_PATH"])) as conn:
        rows = conn.execute("SELECT payload FROM outbox ORDER BY rowid").fetchall()
    return [json.loads(row[0]) for row in rows]


def event_lines(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.startswith("evt_")]


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


def pay_with_card(buyer: Buyer, checkout_url: str) -> int:
    """Pay on the sandbox page without following the redirect: the success page would
    fulfil the purchase itself, and this test needs the event to be the only way in."""
    response = buyer.pay_on_checkout_page(checkout_url, "4242 4242 4242 4242")
    return response.status_code


def test_a_missed_payment_is_credited_by_a_replay_once(withheld_app: AppServer) -> None:
    buyer = Buyer(withheld_app.url, "missed@example.com")
    started = buyer.checkout("popular")
    assert pay_with_card(buyer, started["url"]) == 303
    deliveries = buyer.get("/sandbox/deliveries").json()
    assert (deliveries["webhooks"], deliveries["pending"]) == ("off", 1)
    assert buyer.balance() == 0
    [completed] = [
        e for e in outbox(withheld_app) if e["data"]["object"].get("id") == started["session_id"]
    ]
    assert completed["type"] == "checkout.session.completed"

    first = replay(withheld_app, "--since", "1h")
    assert first.returncode == 0, first.stderr
    assert [completed["id"], "checkout.session.completed", "paid"] in event_lines(first.stdout)
    assert "processed 1, already recorded 0, failed 0" in summary(first.stdout)
    assert buyer.balance() == 110
    assert [(t["type"], t["amount"]) for t in buyer.history()] == [("purchase", 110)]

    second = replay(withheld_app, "--since", "1h")
    assert second.returncode == 0, second.stderr
    assert event_lines(second.stdout) == []
    assert "processed 0, already recorded 1, failed 0" in summary(second.stdout)
    assert buyer.balance() == 110
    assert len(buyer.history()) == 1
    # The sandbox still withholds the delivery: the credit came from the replay.
    assert buyer.get("/sandbox/deliveries").json()["pending"] == 1


@pytest.mark.parametrize("value", ["soon", "72", "0h", "-3h", "1w", "1.5h", ""])
def test_a_bad_since_is_a_usage_error(withheld_app: AppServer, value: str) -> None:
    result = tokens_in_process(withheld_app.env, "replay-events", "--since", value)
    assert result.returncode == 2
    assert "Invalid value for '--since'" in result.stderr
    assert "is not a duration" in result.stderr
    assert result.stdout == ""


def test_more_than_thirty_days_is_refused(withheld_app: AppServer) -> None:
    result = tokens_in_process(withheld_app.env, "replay-events", "--since", "31d")
    assert result.returncode == 2
    assert "Stripe keeps events for 30 days; cannot replay the last 31 days" in result.stderr
    assert result.stdout == ""
    accepted = replay(withheld_app, "--since", "30d")
    assert accepted.returncode == 0, accepted.stderr
    assert summary(accepted.stdout).startswith("listed ")


# -- replay_events itself, with a stand-in gateway and processor --------------------


class ListedEvents:
    """Just enough of a gateway: events as Stripe lists them, newest first."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.asked: list[int] = []

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        self.asked.append(created_gte)
        return iter([e for e in self.events if e["created"] >= created_gte])


class RecordingProcessor(EventProcessor):
    def __init__(self, seen: set[str], failing: set[str] | None = None) -> None:
        self.seen = seen
        self.failing = failing or set()
        self.order: list[str] = []

    def process(self, event: Mapping[str, Any]) -> EventResult:
        event_id = str(event["id"])
        self.order.append(event_id)
        if event_id in self.failing:
            raise RuntimeError("storage unavailable")
        if event_id in self.seen:
            return EventResult(event_id, "duplicate", duplicate=True)
        self.seen.add(event_id)
        return EventResult(event_id, "paid", duplicate=False)


def stripe_event(event_id: str, created: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "checkout.session.completed",
        "created": int(created.timestamp()),
    }


def gateway_of(events: ListedEvents) -> PaymentsGateway:
    return cast(PaymentsGateway, events)  # only list_events is used


def test_events_are_replayed_oldest_first_keeping_creation_order_within_a_second() -> None:
    second = NOW - timedelta(minutes=5)
    listed = ListedEvents(
        [
            stripe_event("evt_newest", NOW - timedelta(minutes=1)),
            stripe_event("evt_c", second),
            stripe_event("evt_b", second),
            stripe_event("evt_a", NOW - timedelta(hours=2)),
            stripe_event("evt_too_old", NOW - timedelta(hours=4)),
        ]
    )
    processor = RecordingProcessor(seen={"evt_b"})
    report = replay_events(gateway_of(listed), processor, timedelta(hours=3), NOW)
    assert listed.asked == [int((NOW - timedelta(hours=3)).timestamp())]
    assert processor.order == ["evt_a", "evt_b", "evt_c", "evt_newest"]
    assert (report.listed, report.processed, report.already_recorded, report.failed) == (
        4,
        3,
        1,
        0,
    )
    assert [(e.event_id, e.outcome) for e in report.events] == [
        ("evt_a", "paid"),
        ("evt_b", "duplicate"),
        ("evt_c", "paid"),
        ("evt_newest", "paid"),
    ]


def test_a_failing_event_is_reported_and_the_others_still_processed() -> None:
    listed = ListedEvents([stripe_event("evt_2", NOW), stripe_event("evt_1", NOW)])
    processor = RecordingProcessor(seen=set(), failing={"evt_1"})
    report = replay_events(gateway_of(listed), processor, timedelta(hours=1), NOW)
    assert (report.processed, report.failed) == (1, 1)
    assert report.events[0].error == "RuntimeError: storage unavailable"
    assert report.events[0].outcome == "failed"


@pytest.mark.parametrize("since", [timedelta(days=30, seconds=1), timedelta(0), -timedelta(1)])
def test_replay_refuses_windows_stripe_cannot_serve(since: timedelta) -> None:
    listed = ListedEvents([])
    with pytest.raises(ReplayError):
        replay_events(gateway_of(listed), RecordingProcessor(set()), since, NOW)
    assert listed.asked == []
