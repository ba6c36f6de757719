"""Every line a server writes over its whole life formats: start, requests, graceful stop.

Python's logging does not raise when a record cannot be formatted: it prints
"--- Logging error ---" and a traceback to stderr and drops the line. Gunicorn's
readable format needs each record's process id, for one.
"""

from __future__ import annotations

import pytest

from tests.support.purchases import Buyer
from tests.support.server import AppServer

LOGGING_ERROR = "--- Logging error ---"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_server_logs_start_requests_and_stop_without_a_logging_error(log_format: str) -> None:
    server = AppServer({"SANDBOX_WEBHOOKS": "off", "LOG_FORMAT": log_format}).start()
    try:
        buyer = Buyer(server.url, "logs@example.com")
        assert buyer.get("/api/tokens/balance").status_code == 200
        server.halt_one(0)  # a graceful stop: the worker and the master log their exit
        output = server.output()
    finally:
        server.stop()
    assert "Shutting down" in output, output[-2000:]
    assert LOGGING_ERROR not in output, output[-4000:]
