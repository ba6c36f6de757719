"""`make run` on another port: a whole sandbox purchase in the browser, nothing sent to 8080.

The app is started exactly as the README says (``PORT=<n> make run``), with no
``APP_BASE_URL``: the sandbox's checkout link, its success URL and its webhook
deliveries must all reach the server on that port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, expect

from tests.browser.support import (
    GOOD_CARD,
    Shots,
    expect_header_balance,
    expect_paid,
    path_is,
    pay_hosted,
    sign_in,
    start_hosted_checkout,
)
from tests.support.firestore_emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


class MadeRun:
    """``make run`` in its own process group, so stopping it stops gunicorn too."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "make-run.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("APP_BASE_URL", "APP_ENV", "TOKEN_STORE_NO_MODULE_APP")
        }
        env.update(STRIPE_SECRET_KEY="", FIREBASE_PROJECT_ID="", TOKEN_CATALOG_FILE="")
        env["SANDBOX_DB_PATH"] = str(workdir / "sandbox.db")
        command = ["make", "--no-print-directory", "run", f"PORT={self.port}"]
        command.append(f"STORE_URL=sqlite:///{workdir / 'tokens.db'}")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make run exited:\n{self.log.read_text()}", pytrace=False)
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"make run did not answer on {self.url}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def made_run() -> Iterator[MadeRun]:
    with tempfile.TemporaryDirectory(prefix="make-run-") as workdir:
        run = MadeRun(Path(workdir))
        try:
            run.wait_ready()
            yield run
        finally:
            run.stop()


def test_make_run_on_another_port_completes_a_sandbox_purchase(
    browser: Browser, made_run: MadeRun, shots: Shots
) -> None:
    context = browser.new_context(base_url=made_run.url)
    try:
        page = context.new_page()
        sign_in(page, "porter@example.com", "porter")
        started = start_hosted_checkout(page, "popular")
        assert started["url"].startswith(made_run.url + "/sandbox/checkout/"), started
        shots(page, "sandbox-checkout")
        pay_hosted(page, GOOD_CARD)
        page.wait_for_url(path_is("/token-purchase-success"))
        assert page.url.startswith(made_run.url), page.url
        expect_paid(page, 110)  # the webhook reached this server, not port 8080
        expect_header_balance(page, 110)
        expect(page.get_by_test_id("receipt")).to_contain_text(started["purchase_id"])
        shots(page, "success")
    finally:
        context.close()
