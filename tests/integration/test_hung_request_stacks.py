"""A request that hangs can be seen: ``AppServer.stacks()`` makes every gunicorn worker
write its threads' stacks (gunicorn.conf.py: SIGUSR2, ops/thread_stacks.py), and
tests/conftest.py attaches them to the report of a test that failed on a timeout.

Here a real server's checkout start waits on SQLite's write lock, held by this test, and the
stacks must show that request's thread waiting in the store's write. Asking for them must
never end the worker, however busy its threads are.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time

import requests

from tests.support.purchases import Buyer
from tests.support.server import AppServer

ATTEMPTS = 20
ASKS = 200  # stack dumps asked of a busy worker
ASK_EVERY_S = 0.01


def test_the_stacks_show_where_a_hung_request_waits(quiet_app: AppServer) -> None:
    buyer = Buyer(quiet_app.url, "hung@example.com")
    store_path = quiet_app.env["STORE_URL"].removeprefix("sqlite:///")
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the app's next write waits for this lock
    answers: list[int] = []

    def start_checkout() -> None:
        answer = buyer.post("/api/tokens/create-checkout-session", json={"package": "popular"})
        answers.append(answer.status_code)

    waiting = threading.Thread(target=start_checkout)
    waiting.start()
    try:
        stacks = ""
        for _ in range(ATTEMPTS):  # until the spend has reached the lock
            stacks = quiet_app.stacks(wait_s=0.5)
            if "in _write" in stacks:
                break
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiting.join(timeout=30)
    assert "Thread 0x" in stacks, stacks[-2000:]
    assert "in _write" in stacks and "services/store/sqlite.py" in stacks, stacks[-4000:]
    assert answers == [200], answers  # it went through once the lock was let go


def _keep_busy(url: str, stop: threading.Event, failures: list[str]) -> None:
    with requests.Session() as http:
        while not stop.is_set():
            try:
                http.get(f"{url}/api/tokens/packages", timeout=30).raise_for_status()
            except requests.RequestException as exc:
                failures.append(repr(exc))


def test_asking_a_busy_worker_for_its_stacks_again_and_again_never_ends_it(
    quiet_app: AppServer,
) -> None:
    """faulthandler wrote the stacks from the signal itself, reading the other threads'
    frames while they ran: now and then that crashed the worker (SIGSEGV), and the
    requests it was serving with it."""
    (worker,) = quiet_app.workers()
    stop = threading.Event()
    failures: list[str] = []
    clients = [
        threading.Thread(target=_keep_busy, args=(quiet_app.url, stop, failures)) for _ in range(4)
    ]
    for client in clients:
        client.start()
    try:
        for _ in range(ASKS):
            with contextlib.suppress(ProcessLookupError):  # it died: the asserts say how
                os.kill(worker, signal.SIGUSR2)
            time.sleep(ASK_EVERY_S)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    log = quiet_app.output(tail=20_000)
    assert quiet_app.workers() == [worker], log[-4000:]
    assert "was sent" not in log, log[-4000:]
    assert failures == [], failures[:5]
    assert "Thread 0x" in log, log[-4000:]
