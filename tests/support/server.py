"""Run the app under gunicorn, as production does, on free local ports.

``AppServer(env, processes=N)`` starts N separate gunicorn servers (one worker each,
each its own process with its own store) on one database, as Cloud Run runs N
instances: ``urls`` lists them and ``url_for(n)`` spreads requests over them. They
share the environment, the sandbox's database and ``APP_BASE_URL`` (the first one's).
``root`` serves another checkout of the project (the webhook bench's baseline).
A test that fails on a request's timeout reports the stacks of every live server's
threads (``stacks()``, from tests/conftest.py): what the request was waiting on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, ClassVar

import requests

from tests.support.firestore_emulator import free_port
from tests.support.waiting import Started, http_ok, wait_answering

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
STACKS_TAIL_CHARS = 40_000
ESTABLISHED = "01"  # a socket's state in /proc/net/tcp


class AppServer:
    live: ClassVar[set[AppServer]] = set()  # started and not yet stopped: see stacks()

    def __init__(
        self,
        env: dict[str, str],
        processes: int = 1,
        threads: int = 4,
        root: Path = ROOT,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.ports = [free_port() for _ in range(processes)]
        self.port = self.ports[0]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.url = self.urls[0]
        self.threads = threads
        self.root = root
        self.workdir = tempfile.TemporaryDirectory(prefix="app-")
        defaults = {
            "PORT": str(self.port),
            "APP_BASE_URL": self.url,
            "STORE_URL": f"sqlite:///{self.workdir.name}/tokens.db",
            "SANDBOX_DB_PATH": f"{self.workdir.name}/sandbox.db",
            # A request sent on a kept-alive connection just as the server closes it
            # for idleness is reset, and requests does not resend a POST. The tests'
            # clients leave connections idle between phases, longer than gunicorn's
            # 5 s on a loaded machine, so here they stay open longer than any phase.
            "GUNICORN_KEEPALIVE": "120",
        }
        self.env = {**os.environ, **defaults, **env}
        self.env.pop("TOKEN_STORE_NO_MODULE_APP", None)
        # Live as long as the server; closed (and removed) in stop().
        self.logs: list[IO[bytes]] = [
            tempfile.NamedTemporaryFile(prefix=f"gunicorn-{n}-", suffix=".log")  # noqa: SIM115
            for n in range(processes)
        ]
        self.log = self.logs[0]
        self.running: list[subprocess.Popen[bytes] | None] = [None] * processes

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The first server's gunicorn master."""
        return self.running[0]

    def url_for(self, n: int) -> str:
        """The n-th request's server, round-robin."""
        return self.urls[n % len(self.urls)]

    def command(self, port: int) -> list[str]:
        return [
            str(GUNICORN),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            str(self.threads),
            "app:app",
        ]

    def launch_one(self, n: int) -> subprocess.Popen[bytes]:
        port = self.ports[n]
        process = subprocess.Popen(
            self.command(port),
            cwd=self.root,
            env={**self.env, "PORT": str(port)},
            stdout=self.logs[n],
            stderr=subprocess.STDOUT,
        )
        self.running[n] = process
        return process

    def start(self) -> AppServer:
        AppServer.live.add(self)
        for n in range(len(self.ports)):
            self.launch_one(n)
        deadline = time.monotonic() + START_TIMEOUT_S
        for n, url in enumerate(self.urls):
            if not self._answers(n, url, deadline):
                self.stop()
                raise RuntimeError(
                    f"gunicorn at {url} did not answer within {START_TIMEOUT_S}s:\n{self.output()}"
                )
        return self

    def _answers(self, n: int, url: str, deadline: float) -> bool:
        process = self.running[n]
        assert process is not None
        # not listening yet, or too busy to answer
        started = wait_answering(
            process, http_ok(f"{url}/healthz"), deadline, 0.1, (requests.RequestException,)
        )
        if started is Started.EXITED:
            output = self.output()
            self.stop()
            raise RuntimeError(f"gunicorn at {url} exited with {process.returncode}:\n{output}")
        return started is Started.ANSWERED

    def output(self, tail: int | None = None) -> str:
        """What the servers wrote (the last ``tail`` characters of each), one after another."""
        texts = [Path(log.name).read_text(errors="replace")[-(tail or 0) :] for log in self.logs]
        if len(texts) == 1:
            return texts[0]
        return "\n".join(
            f"--- {url} ---\n{text}" for url, text in zip(self.urls, texts, strict=True)
        )

    def halt_one(self, n: int) -> None:
        process = self.running[n]
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running[n] = None

    def workers(self) -> list[int]:
        """The process ids of every server's gunicorn workers."""
        return [worker for process in self.running for worker in _children(process)]

    def stacks(self, wait_s: float = 1.0) -> str:
        """Every worker thread's stack now (gunicorn.conf.py: SIGUSR2), with the log tail."""
        for worker in self.workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGUSR2)
        time.sleep(wait_s)  # the worker writes them within its next poll (at most 1 s)
        return self.output(tail=STACKS_TAIL_CHARS)

    def open_connections(self) -> int:
        """Established TCP connections to the servers' ports, counted on the server side."""
        ports = {f"{port:04X}" for port in self.ports}
        count = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            _, local, _, state = line.split()[:4]
            count += local.rsplit(":", 1)[1] in ports and state == ESTABLISHED
        return count

    def stop(self) -> None:
        AppServer.live.discard(self)
        for n in range(len(self.running)):
            self.halt_one(n)
        for log in self.logs:
            log.close()
        self.workdir.cleanup()


def _children(process: subprocess.Popen[bytes] | None) -> list[int]:
    """The gunicorn master's worker processes (Linux /proc)."""
    if process is None or process.poll() is not None:
        return []
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in path.read_text().split()]
    return []


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
