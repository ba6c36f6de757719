"""A request that hangs can be seen: ``AppServer.stacks()`` makes every gunicorn worker
write its threads' stacks (gunicorn.conf.py registers SIGUSR2 with faulthandler), and
tests/conftest.py attaches them to the report of a test that failed on a timeout.

Here a real server's checkout start waits on SQLite's write lock, held by this test, and the
stacks must show that request's thread waiting in the store's write.
"""

from __future__ import annotations

import sqlite3
import threading

from tests.support.purchases import Buyer
from tests.support.server import AppServer

ATTEMPTS = 20


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
