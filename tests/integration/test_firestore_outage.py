"""Firestore outages answer fast: 503 with Retry-After, never a 500 or a hang.

The app runs under gunicorn against its own emulator. A buyer pays a checkout
whose event is held back (SANDBOX_WEBHOOKS=off); then Firestore goes away,
stalled (the emulator stopped with SIGSTOP, as in a network partition: the
connection stays open and nothing answers) or refused (the emulator killed).
The webhook, the JSON API and the pages must each answer 503 with Retry-After
well within the issue's 15 s. When Firestore is back (SIGCONT, or a restart
from an export taken before the outage), the held-back event delivered twice
credits the pack exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from config.catalog import load_catalog
from tests.support.crash import CrashClient, CrashServer, RestartableEmulator, deliver, outbox
from tests.support.purchases import wait_for
from tests.support.webhooks import WEBHOOK_PATH, delivery

# The bound for an outage answer; the store gives up after about 10 s.
ANSWER_BOUND_S = 15.0
PROJECT = "demo-outage"
PACK = next(iter(load_catalog(None)))


@dataclass
class Site:
    emulator: RestartableEmulator
    server: CrashServer
    buyer: CrashClient
    event: dict[str, object]  # the paid checkout.session.completed, not yet delivered


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    emulator = RestartableEmulator(tmp_path / "exports")
    try:
        emulator.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the Firestore emulator: {exc}", pytrace=False)
    server = CrashServer(
        {
            "STORE_URL": f"firestore://{PROJECT}",
            "SANDBOX_WEBHOOKS": "off",
            "FIRESTORE_EMULATOR_HOST": emulator.host,
        }
    )
    try:
        server.start()
        buyer = CrashClient(server.url, "outage@example.com")
        buyer.pay(buyer.checkout(PACK.id, key="outage-1")["url"])
        [event] = [
            e
            for _, e in outbox(server.env["SANDBOX_DB_PATH"])
            if e["type"] == "checkout.session.completed"
        ]
        assert buyer.account()["balance"] == 0
        yield Site(emulator, server, buyer, event)
    finally:
        if emulator.process is not None:
            os.killpg(emulator.process.pid, signal.SIGCONT)  # a stopped group cannot end
        server.stop()
        emulator.stop()


def _webhook(site: Site) -> requests.Response:
    payload, headers = delivery(site.event)
    return requests.post(
        f"{site.server.url}{WEBHOOK_PATH}",
        data=payload,
        headers=headers,
        timeout=2 * ANSWER_BOUND_S,
    )


def _get(site: Site, path: str) -> requests.Response:
    return site.buyer.http.get(f"{site.server.url}{path}", timeout=2 * ANSWER_BOUND_S)


PROBES: dict[str, Callable[[Site], requests.Response]] = {
    "webhook": _webhook,
    "balance API": lambda s: _get(s, "/api/tokens/balance"),
    "history API": lambda s: _get(s, "/api/tokens/transactions"),
    "history page": lambda s: _get(s, "/tokens/history"),
    "buy page": lambda s: _get(s, "/buy-tokens"),
}


def _answers_while_down(site: Site) -> dict[str, tuple[int, str | None, float]]:
    """(status, Retry-After, seconds) per probe, each timed on its own; status 0 when
    no answer came in twice the bound."""
    answers: dict[str, tuple[int, str | None, float]] = {}
    for name, probe in PROBES.items():
        started = time.monotonic()
        try:
            response = probe(site)
        except requests.Timeout:  # no answer at all: a hang
            answers[name] = (0, None, time.monotonic() - started)
            continue
        answers[name] = (
            response.status_code,
            response.headers.get("Retry-After"),
            time.monotonic() - started,
        )
    return answers


def _check_fast_503s(answers: dict[str, tuple[int, str | None, float]]) -> None:
    wrong = {
        name: answer
        for name, answer in answers.items()
        if answer[0] != 503 or not answer[1] or answer[2] >= ANSWER_BOUND_S
    }
    assert wrong == {}, f"each probe must be a 503 with Retry-After in <{ANSWER_BOUND_S}s"


def _ready(site: Site) -> bool:
    try:
        return requests.get(f"{site.server.url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _credits_once(site: Site) -> None:
    """Stripe's retry and one more copy of the event: one credit, the pack's tokens."""
    http = requests.Session()
    first = deliver(site.server.url, site.event, http)
    again = deliver(site.server.url, site.event, http)
    assert first.answer.status == 200, first.answer.body
    assert again.answer.body.get("duplicate") is True, again.answer.body
    assert site.buyer.account()["balance"] == PACK.tokens


def test_a_stalled_firestore_is_a_fast_503_then_credits_once(site: Site) -> None:
    assert site.emulator.process is not None
    os.killpg(site.emulator.process.pid, signal.SIGSTOP)
    try:
        answers = _answers_while_down(site)
    finally:
        os.killpg(site.emulator.process.pid, signal.SIGCONT)
    _check_fast_503s(answers)
    wait_for(lambda: _ready(site), "/readyz 200 once the emulator runs again", 60)
    _credits_once(site)


def test_a_refused_firestore_is_a_fast_503_then_credits_once(site: Site) -> None:
    export = site.emulator.export(PROJECT)
    site.emulator.kill()
    answers = _answers_while_down(site)
    site.emulator.start_from(export)
    _check_fast_503s(answers)
    wait_for(lambda: _ready(site), "/readyz 200 once the emulator is back", 60)
    _credits_once(site)
