"""Start the official Cloud Firestore emulator for a test session.

The emulator is a real process with real transactions and contention. When
it cannot start, ``FirestoreEmulator.start`` raises with the reason, so the
Firestore tests fail instead of being skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.support.waiting import Started, http_ok, wait_answering

EMULATOR = Path(
    os.environ.get(
        "FIRESTORE_EMULATOR_BIN",
        "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator",
    )
)
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FirestoreEmulator:
    def __init__(self, rules: Path | None = None) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.rules = rules
        self.process: subprocess.Popen[bytes] | None = None
        # Lives as long as the emulator; closed (and removed) in stop().
        self.log = tempfile.NamedTemporaryFile(prefix="firestore-emulator-", suffix=".log")  # noqa: SIM115

    def start(self) -> FirestoreEmulator:
        if not EMULATOR.exists():
            raise RuntimeError(f"Firestore emulator not found at {EMULATOR}")
        if shutil.which("java") is None:
            raise RuntimeError("the Firestore emulator needs Java 17 on PATH; none found")
        command = [str(EMULATOR), "start", "--host=127.0.0.1", f"--port={self.port}"]
        if self.rules is not None:
            command.append(f"--rules={self.rules}")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        # not listening yet, or still starting up
        started = wait_answering(
            self.process,
            http_ok(f"http://{self.host}/"),
            deadline,
            0.2,
            (requests.RequestException,),
        )
        if started is Started.ANSWERED:
            return
        if started is Started.EXITED:
            raise RuntimeError(f"Firestore emulator exited early:\n{self.output()}")
        self.stop()
        raise RuntimeError(
            f"Firestore emulator not ready after {START_TIMEOUT_S}s:\n{self.output()}"
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def clear(self, project: str) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        requests.delete(url, timeout=30).raise_for_status()

    def stop(self) -> None:
        if self.process is None:
            return
        # The launcher script starts java as a child: end the whole group.
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, 9)
        self.process = None
        self.log.close()
