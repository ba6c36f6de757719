"""SQLite specifics: the journal is append-only in the schema itself."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.errors import StorageContention, StorageUnavailable
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from tests.support.purchases import wait_for

SLACK_S = 0.5  # scheduling on a loaded machine


def test_journal_rows_cannot_be_edited_or_deleted(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = TokenLedger(SqliteStore(str(path)))
    ledger.open_account("u")
    ledger.credit("u", 5, key="k")
    conn = sqlite3.connect(path)
    for statement in (
        "UPDATE entries SET amount = 500",
        "DELETE FROM entries",
        "UPDATE journal_transactions SET reason = 'x'",
        "DELETE FROM journal_transactions",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()
    assert ledger.balance("u").balance == 5


def test_a_locked_database_is_a_retryable_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path))
    TokenLedger(store).open_account("u")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        impatient = TokenLedger(SqliteStore(str(path), busy_timeout_ms=50))
        with pytest.raises(StorageContention):
            impatient.credit("u", 1, key="k")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert TokenLedger(store).balance("u").balance == 0


def test_a_thread_waits_for_another_threads_write_no_longer_than_the_busy_timeout(
    tmp_path: Path,
) -> None:
    """Threads of one store queue for the write lock in-process; that wait is bounded too."""
    store = SqliteStore(str(tmp_path / "ledger.db"), busy_timeout_ms=100)
    ledger = TokenLedger(store)
    ledger.open_account("u")
    writing, release = threading.Event(), threading.Event()

    def long_write(conn: sqlite3.Connection) -> None:
        writing.set()
        release.wait(10)

    holder = threading.Thread(target=store._write, args=(long_write,))
    holder.start()
    try:
        assert writing.wait(10)
        with pytest.raises(StorageContention):
            ledger.credit("u", 1, key="k")
    finally:
        release.set()
        holder.join(10)
    ledger.credit("u", 1, key="k")  # the lock was handed on
    assert ledger.balance("u").balance == 1


def test_a_writer_waits_no_longer_than_the_busy_timeout_in_the_queue_and_sqlite_together(
    tmp_path: Path,
) -> None:
    """A thread queued behind another of its process, then meeting another process's
    write lock, waits one busy timeout in all, not one in the queue and one more in SQLite.

    The thread ahead holds the queue for the whole timeout (it waits in SQLite); the
    queued thread joins halfway, so half its timeout is left when its turn comes."""
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path), busy_timeout_ms=2000)
    ledger = TokenLedger(store)
    ledger.open_account("u")
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    ahead_errors: list[Exception] = []
    ahead = threading.Thread(target=_credit, args=(ledger, "ahead", ahead_errors))
    try:
        ahead.start()
        wait_for(store._writing.locked, "the thread ahead to take the queue")
        time.sleep(1.0)
        began = time.monotonic()
        with pytest.raises(StorageContention):
            ledger.credit("u", 1, key="queued")
        waited = time.monotonic() - began
        ahead.join(10)
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    assert waited < 2.0 + SLACK_S, f"waited {waited:.2f} s for a 2 s busy timeout"
    assert [type(error) for error in ahead_errors] == [StorageContention]
    # The shortened wait was for that one BEGIN: this thread's connection waits in full again.
    assert store._writer_conn().execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    ledger.credit("u", 1, key="after")
    assert ledger.balance("u").balance == 1


def test_the_threads_of_a_store_write_on_one_connection_and_read_on_their_own(
    tmp_path: Path,
) -> None:
    """A connection's page cache is dropped when another connection commits, so one
    writer per process keeps its pages between writes; each thread keeps its reader."""
    store = SqliteStore(str(tmp_path / "ledger.db"))
    writers: list[sqlite3.Connection] = []
    readers: list[sqlite3.Connection] = []

    def write_and_read() -> None:
        writers.append(store._write(lambda conn: conn))
        readers.append(store._conn())

    threads = [threading.Thread(target=write_and_read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(writers) == 3 and len({id(conn) for conn in writers}) == 1
    assert len({id(conn) for conn in readers}) == 3
    assert writers[0] not in readers
    store.close()
    assert store._write(lambda conn: conn) is not writers[0]  # closed with the store
    store.close()


def _refusing(*statements: str) -> Callable[..., int]:
    def authorize(action: int, arg1: str | None, *_: str | None) -> int:
        refused = action == sqlite3.SQLITE_TRANSACTION and arg1 in statements
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    return authorize


@pytest.mark.parametrize("refused", [("COMMIT",), ("COMMIT", "ROLLBACK")])
def test_a_write_whose_commit_fails_is_rolled_back_and_the_next_write_goes_through(
    tmp_path: Path, refused: tuple[str, ...]
) -> None:
    """The process's writes share one connection: a failed COMMIT (a full disk, an I/O
    error; here refused by an authorizer) must not leave it inside that transaction,
    and one that cannot roll back either is replaced."""
    store = SqliteStore(str(tmp_path / "ledger.db"))
    ledger = TokenLedger(store)
    ledger.open_account("u")
    writer = store._writer_conn()
    writer.set_authorizer(_refusing(*refused))
    with pytest.raises(StorageUnavailable, match="not authorized"):
        ledger.credit("u", 5, key="refused")
    if "ROLLBACK" not in refused:
        writer.set_authorizer(None)
    ledger.credit("u", 1, key="next")
    assert ledger.balance("u").balance == 1
    assert [entry.amount for entry in ledger.history("u").entries] == [1]
    assert (store._writer_conn() is writer) == ("ROLLBACK" not in refused)
    store.close()


def _credit(ledger: TokenLedger, key: str, errors: list[Exception]) -> None:
    try:
        ledger.credit("u", 1, key=key)
    except Exception as exc:
        errors.append(exc)


def test_stores_opened_at_once_on_a_new_file_all_open(tmp_path: Path) -> None:
    """Several workers opening a new database together: none is refused with "locked".

    Without the retry, about one round in thirty refused one opener at once.
    """
    refused: list[Exception] = []

    def open_store(path: Path) -> None:
        try:
            SqliteStore(str(path)).close()
        except Exception as exc:
            refused.append(exc)

    for round_number in range(60):
        path = tmp_path / f"new-{round_number}.db"
        openers = [threading.Thread(target=open_store, args=(path,)) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(60)
    assert refused == []
