"""Several processes opening one new SQLite file at once, as gunicorn's workers do.

Switching a new file to WAL takes an exclusive lock, and SQLite answers "database
is locked" at once instead of waiting when another connection holds it; a worker
that met that failed to boot.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from services.payments.sandbox_db import SandboxDb
from services.store.sqlite import SqliteStore

PROCESSES = 8
ROUNDS = 6


def _open_sandbox(path: str, start: Barrier) -> None:
    start.wait()
    SandboxDb(path)


def _open_store(path: str, start: Barrier) -> None:
    start.wait()
    store = SqliteStore(path)
    store.ping()


def _open_at_once(target: Callable[[str, Barrier], None], path: Path) -> list[int | None]:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=target, args=(str(path), start)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    return [proc.exitcode for proc in procs]


@pytest.mark.parametrize("target", [_open_sandbox, _open_store], ids=["sandbox", "store"])
def test_processes_opening_one_new_file_at_once_all_start(
    target: Callable[[str, Barrier], None], tmp_path: Path
) -> None:
    for round_no in range(ROUNDS):
        codes = _open_at_once(target, tmp_path / f"round{round_no}.db")
        assert codes == [0] * PROCESSES, f"round {round_no}: exit codes {codes}"
