"""localstripe (a third-party, stateful fake Stripe server) as a real subprocess.

localstripe is installed from PyPI (pinned in requirements-dev.txt) and run as
``python -m localstripe --port N --from-scratch``; it speaks Stripe's REST API
under ``/v1`` and has one extra endpoint to register webhooks::

    POST /_config/webhooks/<name>   {"url": ..., "secret": ..., "events": [...]}

It sends each event (``payment_intent.succeeded``, ...) to every registered
webhook in the background, about one second after the API call that caused
it, signed as Stripe does: ``Stripe-Signature: t=<created>,v1=<HMAC-SHA256 of
"<created>.<body>" with the webhook's secret>``. It logs one line per delivery
(``webhook "<type>" successfully delivered`` or ``... failed with response
code <status>``), which ``output()`` returns.

Notes on localstripe 1.15.10 itself: it binds ``[::]`` (all interfaces, v4 and
v6) with no option to choose, so it is reached here at 127.0.0.1; and it writes
its state to ``/tmp/localstripe.pickle`` after every change, which
``--from-scratch`` makes it ignore at start.

``WebhookRelay`` is an optional transparent hop between localstripe and the
app: it forwards each delivery's body and ``Stripe-Signature`` untouched,
answers localstripe with the app's own status and body, and records both, so
a test can assert on exactly what the app answered to localstripe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests
import stripe

from tests.support.firestore_emulator import free_port
from tests.support.local_http import LocalHttpServer
from tests.support.waiting import Started, http_ok, wait_answering

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
API_KEY = "sk_test_localstripe"  # localstripe accepts any key that starts with sk_
FORWARD_TIMEOUT_S = 10.0


class LocalStripe:
    """``with LocalStripe() as ls:`` runs localstripe on a free port until the block ends."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        command = [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        answers = http_ok(
            f"{self.url}/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        started = wait_answering(process, answers, deadline, 0.05)
        if started is Started.ANSWERED:
            return self
        if started is Started.EXITED:
            output = self.output()
            self.stop()
            raise RuntimeError(
                f"localstripe exited with {process.returncode} before answering "
                f"(is it installed? pip install -r requirements-dev.txt):\n{output}"
            )
        output = self.output()
        self.stop()
        raise RuntimeError(f"localstripe did not answer within {START_TIMEOUT_S}s:\n{output}")

    @contextmanager
    def client(self) -> Iterator[stripe.StripeClient]:
        """The real SDK, pointed here, with no retries (a retry would hide a refusal)."""
        with requests.Session() as session:
            yield stripe.StripeClient(
                API_KEY,
                base_addresses={"api": self.url},
                http_client=stripe.RequestsClient(session=session),
                max_network_retries=0,
            )

    def test_card(self, client: stripe.StripeClient) -> stripe.PaymentMethod:
        """A 4242 card payment method, as Stripe.js would create one."""
        return client.v1.payment_methods.create(
            {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                },
            }
        )

    def register_webhook(self, name: str, url: str, secret: str, events: list[str]) -> None:
        """Have localstripe sign ``events`` with ``secret`` and POST them to ``url``."""
        answer = requests.post(
            f"{self.url}/_config/webhooks/{name}",
            json={"url": url, "secret": secret, "events": events},
            timeout=5,
        )
        if not answer.ok:
            raise RuntimeError(
                f"localstripe refused webhook {name!r}: {answer.status_code} {answer.text}"
            )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery from localstripe and the app's answer to it."""

    name: str  # the last path segment of the relay URL it came to
    body: bytes
    signature: str | None
    status: int
    answer: Any  # the app's JSON answer


class WebhookRelay(LocalHttpServer):
    """Forwards POST ``{url}/<name>`` to ``target`` as is, and records each exchange."""

    owner_attr = "relay"
    thread_name = "webhook-relay"

    def __init__(self, target: str) -> None:
        self.target = target
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()

    def record(self, delivery: Delivery) -> None:
        with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        """The first ``count`` deliveries, once they are in; TimeoutError after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise TimeoutError(
                    f"{len(self.deliveries)} of {count} webhook deliveries after {timeout}s"
                )
            return list(self.deliveries)


class _RelayHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        relay: WebhookRelay = self.server.relay  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        signature = self.headers.get("Stripe-Signature")
        headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        answer = requests.post(relay.target, data=body, headers=headers, timeout=FORWARD_TIMEOUT_S)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)
        try:
            parsed: Any = answer.json()
        except ValueError:
            parsed = answer.text
        name = self.path.rstrip("/").rsplit("/", 1)[-1]
        relay.record(Delivery(name, body, signature, answer.status_code, parsed))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on the recorded deliveries instead."""


WebhookRelay.handler = _RelayHandler
