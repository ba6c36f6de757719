"""Run the app under gunicorn, as production does, on a free local port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.support.firestore_emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT_S = 30.0


class AppServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = tempfile.TemporaryDirectory(prefix="app-")
        defaults = {
            "PORT": str(self.port),
            "APP_BASE_URL": self.url,
            "STORE_URL": f"sqlite:///{self.workdir.name}/tokens.db",
            "SANDBOX_DB_PATH": f"{self.workdir.name}/sandbox.db",
        }
        self.env = {**os.environ, **defaults, **env}
        self.env.pop("TOKEN_STORE_NO_MODULE_APP", None)
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        command = [
            str(GUNICORN),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "app:app",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self.process

    def start(self) -> AppServer:
        process = self.launch()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.RequestException:  # not listening yet, or too busy to answer
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT_S}s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()
        self.workdir.cleanup()


def tokens_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app app tokens ARGS`` as an operator would, with the app's environment."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "tokens", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
