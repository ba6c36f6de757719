"""Debian's redis-server on a free port, for the shared request-limit test.

When it is not installed (``.ci/run`` and ``make test`` install it) or does
not answer, ``RedisServer.start`` raises with the reason: the test fails, it
is not skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.firestore_emulator import free_port
from tests.support.waiting import Started, wait_answering

START_TIMEOUT_S = 15.0


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tempfile.NamedTemporaryFile(prefix="redis-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        # No persistence: the data lives as long as the test.
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        started = wait_answering(self.process, client.ping, deadline, 0.05, (redis.RedisError,))
        if started is Started.ANSWERED:
            return self
        if started is Started.EXITED:
            raise RuntimeError(f"redis-server exited:\n{self.output()}")
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S}s")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
        self.log.close()
