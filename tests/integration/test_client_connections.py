"""The tests' clients leave at most one idle connection open per client.

A gunicorn worker stops accepting once it holds ``worker_connections`` (1,000)
connections, and the test servers keep idle ones for 120 s. The SQLite storm's
334 buyers, each used by several threads at once, once left over 1,000 open: the
next checkout waited in the listen queue until its 30 s timeout, with the server
idle. A client used by many threads at once must close its extra connections.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.purchases import Buyer
from tests.support.server import AppServer

THREADS = 8
REQUESTS = 40
SETTLE_S = 5.0


def test_a_client_used_by_many_threads_keeps_one_connection(quiet_app: AppServer) -> None:
    buyer = Buyer(quiet_app.url, "many-threads@example.com")
    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(
            pool.map(lambda _: buyer.get("/api/tokens/balance").status_code, range(REQUESTS))
        )
    assert codes == [200] * REQUESTS
    deadline = time.monotonic() + SETTLE_S
    while quiet_app.open_connections() > 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # the server closes each connection the client closed
    assert quiet_app.open_connections() <= 1
