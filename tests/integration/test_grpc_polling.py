"""The served app's Firestore client reads its replies on the threads that wait for them.

gRPC's default moves every reply through its own I/O threads (named ``event_engine``)
and then wakes the waiting request thread: two thread switches more per RPC, which cost
the webhook about a tenth of its throughput on the emulator (docs/benchmarks.md).
gunicorn.conf.py turns those experiments off (GRPC_EXPERIMENTS) before any worker
imports gRPC. A count of thread switches, not a timing: with the default the I/O
threads switch two to four times per RPC (811 and 856 times for 200 reads, measured on a
2-core machine); here they take no part in the reads. Their own timers still wake them,
by the second rather than by the read (20 to 45 switches in 1.5 s): the test counts those
over as long again without reads and takes them off.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests

from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.server import AppServer

READS = 200


def io_thread_switches(pid: int) -> int:
    """Voluntary context switches so far of the process's gRPC I/O threads (Linux /proc)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == "event_engine":
            status = (task / "status").read_text()
            found = re.search(r"^voluntary_ctxt_switches:\s+(\d+)$", status, re.MULTILINE)
            assert found is not None
            total += int(found.group(1))
    return total


def test_firestore_replies_are_read_by_the_request_threads(
    firestore_emulator: FirestoreEmulator,
) -> None:
    server = AppServer({"STORE_URL": "firestore://demo-grpc-polling"}).start()
    try:
        with requests.Session() as http:
            assert http.get(f"{server.url}/readyz", timeout=30).status_code == 200
            (worker,) = server.workers()
            before, began = io_thread_switches(worker), time.monotonic()
            for _ in range(READS):  # each one Firestore read
                assert http.get(f"{server.url}/readyz", timeout=30).status_code == 200
            switches = io_thread_switches(worker) - before
            quiet = io_thread_switches(worker)
            time.sleep(time.monotonic() - began)  # as long again, without reads
            timers = io_thread_switches(worker) - quiet
    finally:
        server.stop()
    assert switches - timers < READS // 2, (
        f"gRPC's I/O threads switched {switches} times for {READS} reads, "
        f"{timers} times in as long without reads"
    )
