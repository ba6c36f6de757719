"""Each log-based metric's filter selects the lines of its situation, and no other line.

The app runs under gunicorn with LOG_FORMAT=json, as in production. Each
situation (a failing webhook event, a 5xx, a purchase sent to review, a forged
signature, a clawback into debt, reconcile runs clean and with differences,
and a calm one with a purchase, a refund, a declined payment and a 404) is
played against it. Its lines are the ones carrying the request ids its
responses returned (no timing guesses), or the reconcile command's own
output. Every line becomes the LogEntry Cloud Logging would make of it, and
every metric's filter is evaluated on every entry.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from api.http.request_context import REQUEST_ID_HEADER
from tests.integration.test_log_shape import lines
from tests.support.log_entries import (
    job_resource,
    log_name,
    service_resource,
    structured_entry,
    to_entry,
)
from tests.support.log_query import parse
from tests.support.monitoring import metrics
from tests.support.purchases import (
    Buyer,
    charge_event,
    event,
    send,
    session_object,
    wait_for,
)
from tests.support.server import AppServer, tokens_cli

PROJECT = "demo-monitoring"
BUSY_MS = 300  # how long the app waits for the SQLite lock the test holds
SERVER_SITUATIONS = ("calm", "webhook_error", "http_5xx", "review", "signature", "debt")
SITUATIONS = ("other", *SERVER_SITUATIONS, "reconcile_clean", "reconcile_differences")
# How many entries each metric selects in each situation; every other count is zero.
# An errored webhook answers 5xx (so that Stripe retries): the 5xx metric counts it too.
EXPECTED = {
    "token_store_webhook_event_errors": {"webhook_error": 1},
    "token_store_http_5xx": {"webhook_error": 1, "http_5xx": 1},
    "token_store_purchases_in_review": {"review": 1},
    "token_store_webhook_signature_failures": {"signature": 1},
    "token_store_clawbacks_into_debt": {"debt": 1},
    "token_store_reconcile_differences": {"reconcile_differences": 1},
}
Entry = dict[str, Any]


@dataclass
class Situation:
    """The request ids of one situation's responses, and what the test learnt on the way."""

    name: str
    request_ids: set[str] = field(default_factory=set)
    facts: dict[str, Any] = field(default_factory=dict)

    def track(self, response: requests.Response) -> requests.Response:
        self.request_ids.add(response.headers[REQUEST_ID_HEADER])
        return response


@dataclass
class Story:
    app: AppServer
    played: dict[str, Situation] = field(default_factory=dict)
    cli_lines: dict[str, list[str]] = field(default_factory=dict)
    current: Situation | None = None

    def buyer(self, name: str) -> Buyer:
        buyer = Buyer(self.app.url, f"{name}@example.com", name)
        # Every later request of this buyer counts for the situation being played.
        buyer.http.hooks["response"].append(lambda response, *_a, **_k: self.now.track(response))
        return buyer

    @property
    def now(self) -> Situation:
        assert self.current is not None
        return self.current

    def play(self, name: str, steps: Callable[[Situation], None]) -> None:
        self.current = self.played[name] = Situation(name)
        steps(self.current)
        ids = self.current.request_ids
        # Gunicorn writes a request's access line after its response: wait for all of them.
        wait_for(lambda: ids <= access_ids(self.app), f"the access lines of {name}")
        self.current = None

    def db(self) -> Path:
        return Path(self.app.env["STORE_URL"].removeprefix("sqlite:///").split("?")[0])


def access_ids(app: AppServer) -> set[str]:
    return {e["request_id"] for e in lines(app) if "httpRequest" in e and "request_id" in e}


def pay(story: Story, buyer: Buyer, situation: Situation, **overrides: Any) -> dict[str, Any]:
    """Start a checkout, then deliver its signed checkout.session.completed event."""
    started = buyer.checkout()
    obj = session_object(started["session_id"], started["purchase_id"], buyer.user_id, **overrides)
    response = situation.track(send(story.app.url, event("checkout.session.completed", obj)))
    return {**started, "payment_intent": obj["payment_intent"], "response": response}


@contextmanager
def store_locked(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock, as a stuck writer would: the app's writes time out."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def calm(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        buyer = story.buyer("calmbuyer")
        bought = pay(story, buyer, s)
        assert bought["response"].json()["outcome"] == "paid"
        # A refund the balance covers: a clawback, no debt.
        refund = send(story.app.url, charge_event(bought["payment_intent"], 999, 999))
        assert s.track(refund).json()["outcome"] == "refund_clawed_back"
        assert buyer.balance() == 0
        declined = buyer.checkout()
        failed = session_object(declined["session_id"], declined["purchase_id"], buyer.user_id)
        failure = event("checkout.session.async_payment_failed", failed)
        assert s.track(send(story.app.url, failure)).status_code == 200
        assert s.track(send(story.app.url, failure)).json()["duplicate"] is True
        assert buyer.get("/no-such-page").status_code == 404
        s.facts["user_id"] = buyer.user_id

    return steps


def webhook_error(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        buyer = story.buyer("lockedbuyer")
        started = buyer.checkout()
        obj = session_object(started["session_id"], started["purchase_id"], buyer.user_id)
        paid = event("checkout.session.completed", obj)
        with store_locked(story.db()):
            response = s.track(send(story.app.url, paid))
        assert response.status_code >= 500, response.text
        s.facts["event_id"] = paid["id"]
        s.facts["buyer"] = buyer

    return steps


def http_5xx(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        buyer: Buyer = story.played["webhook_error"].facts["buyer"]
        with store_locked(story.db()):
            response = buyer.post("/api/tokens/create-checkout-session", json={"package": "pro"})
        assert response.status_code == 503, response.text

    return steps


def review(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        buyer = story.buyer("reviewbuyer")
        bought = pay(story, buyer, s, amount_total=1, amount_subtotal=1)
        assert bought["response"].json()["outcome"] == "needs_review"
        s.facts["purchase_id"] = bought["purchase_id"]

    return steps


def signature(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        forged = send(
            story.app.url,
            b'{"id": "evt_forged", "type": "checkout.session.completed"}',
            signature="t=1,v1=" + "ab" * 32,
        )
        assert s.track(forged).status_code == 400

    return steps


def debt(story: Story) -> Callable[[Situation], None]:
    def steps(s: Situation) -> None:
        buyer = story.buyer("debtbuyer")
        bought = pay(story, buyer, s)
        spent = buyer.post(
            "/api/tokens/spend",
            json={"amount": 100, "reason": "render"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert spent.status_code == 200, spent.text
        refund = s.track(send(story.app.url, charge_event(bought["payment_intent"], 999, 999)))
        assert refund.json()["outcome"] == "refund_clawed_back"
        assert buyer.get("/api/tokens/balance").json()["debt"] == 100
        s.facts.update(purchase_id=bought["purchase_id"], user_id=buyer.user_id)

    return steps


def reconcile(story: Story, name: str, exit_status: int) -> None:
    """The real command, with the app's settings; its stderr holds its log lines."""
    done = tokens_cli(story.app.env, "reconcile", "--no-provider")
    assert done.returncode == exit_status, done.stdout + done.stderr
    story.cli_lines[name] = done.stderr.splitlines()


def corrupt_balance(db: Path, user_id: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        sql = "UPDATE accounts SET balance = balance + 5 WHERE user_id = ?"
        assert conn.execute(sql, (user_id,)).rowcount == 1
    finally:
        conn.close()


@pytest.fixture(scope="module")
def story() -> Iterator[Story]:
    server = AppServer({"LOG_FORMAT": "json", "GOOGLE_CLOUD_PROJECT": PROJECT})
    server.env["STORE_URL"] += f"?busy_timeout_ms={BUSY_MS}"
    story = Story(server)
    try:
        server.start()
        for name, steps in zip(
            SERVER_SITUATIONS, (calm, webhook_error, http_5xx, review, signature, debt), strict=True
        ):
            story.play(name, steps(story))
        reconcile(story, "reconcile_clean", 0)
        corrupt_balance(story.db(), story.played["calm"].facts["user_id"])
        reconcile(story, "reconcile_differences", 1)
        yield story
    finally:
        server.stop()


@pytest.fixture(scope="module")
def entries(story: Story) -> dict[str, list[Entry]]:
    """Every captured line as its LogEntry, grouped by situation.

    "other" holds the server's remaining lines: start-up, and each buyer's sign-in.
    """
    groups: dict[str, list[Entry]] = {name: [] for name in SITUATIONS}
    owner = {rid: s.name for s in story.played.values() for rid in s.request_ids}
    for data in lines(story.app):
        # Gunicorn's access log goes to stdout, the app's lines to stderr (gunicorn.conf.py).
        stream = "stdout" if "httpRequest" in data else "stderr"
        entry = structured_entry(data, log_name(PROJECT, stream), service_resource())
        groups[owner.get(str(data.get("request_id")), "other")].append(entry)
    for name, output in story.cli_lines.items():
        job_log = log_name(PROJECT, "stderr")
        groups[name] = [to_entry(line, job_log, job_resource()) for line in output if line]
    return groups


def selected(metric: str, entries: list[Entry]) -> list[Entry]:
    keep = parse(metrics()[metric]["filter"])
    return [e for e in entries if keep(e)]


def test_every_situation_left_lines(entries: dict[str, list[Entry]]) -> None:
    for name in SITUATIONS:
        assert entries[name], name
    assert any("jsonPayload" in e for e in entries["reconcile_differences"])


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_each_metric_selects_its_situation_and_no_other(
    metric: str, entries: dict[str, list[Entry]]
) -> None:
    counts = {name: len(selected(metric, entries[name])) for name in SITUATIONS}
    assert counts == {name: EXPECTED[metric].get(name, 0) for name in SITUATIONS}


def test_every_situation_metric_is_tested() -> None:
    assert set(EXPECTED) | {"token_store_http_requests"} == set(metrics())


def test_the_request_count_is_every_access_line_of_the_app(
    story: Story, entries: dict[str, list[Entry]]
) -> None:
    for name in SERVER_SITUATIONS:
        requests_made = len(story.played[name].request_ids)
        assert len(selected("token_store_http_requests", entries[name])) == requests_made, name
    for name in ("reconcile_clean", "reconcile_differences"):
        assert not selected("token_store_http_requests", entries[name]), name


def test_the_selected_lines_are_the_right_ones(
    story: Story, entries: dict[str, list[Entry]]
) -> None:
    played = story.played
    [failed] = selected("token_store_webhook_event_errors", entries["webhook_error"])
    assert failed["jsonPayload"]["event_id"] == played["webhook_error"].facts["event_id"]
    assert failed["severity"] == "ERROR"
    statuses = [
        (e["httpRequest"]["status"], e["httpRequest"]["requestUrl"].rsplit("/", 1)[-1])
        for name in ("webhook_error", "http_5xx")
        for e in selected("token_store_http_5xx", entries[name])
    ]
    assert statuses == [(503, "webhook"), (503, "create-checkout-session")]
    [held] = selected("token_store_purchases_in_review", entries["review"])
    assert held["jsonPayload"]["purchase_id"] == played["review"].facts["purchase_id"]
    [indebted] = selected("token_store_clawbacks_into_debt", entries["debt"])
    facts = played["debt"].facts
    assert (indebted["jsonPayload"]["purchase_id"], indebted["jsonPayload"]["user_id"]) == (
        facts["purchase_id"],
        facts["user_id"],
    )
    assert "owing 100 tokens" in indebted["jsonPayload"]["message"]
    [differs] = selected("token_store_reconcile_differences", entries["reconcile_differences"])
    assert differs["severity"] == "WARNING"
    assert "found 2 differences" in differs["jsonPayload"]["message"]
    clean = [e for e in entries["reconcile_clean"] if "jsonPayload" in e]
    assert [e["jsonPayload"]["outcome"] for e in clean if "outcome" in e["jsonPayload"]] == [
        "reconciled"
    ]
