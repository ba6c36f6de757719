"""SQLite adapter: WAL, BEGIN IMMEDIATE per write; reads on a connection per thread,
writes on one connection per process.

BEGIN IMMEDIATE takes the write lock before the first read, so the
read-check-write of ``rules.execute`` cannot interleave with another writer;
readers keep working on their WAL snapshot meanwhile.

The threads of one process queue for the write lock on a ``threading.Lock`` first:
SQLite's busy handler polls with growing sleeps (1, 2, 5, 10 ms ...), so a lock freed
during a sleep stayed idle while the waiters slept, and their retries cost CPU. The
queue hands the lock on at once (webhook bench at 16 in flight: 295 to about 350
events/s, p99 175 to 66 ms). Processes still meet in SQLite's own lock, whose wait
gets what the queue left of the busy timeout, so a writer gives up after one busy
timeout in all (StorageContention, a 503), not one in the queue and one more in SQLite.

Since the queue lets one thread write at a time, all of them write on one connection.
A connection's page cache is thrown away whenever another connection has committed:
with a writer connection per thread, each write read its pages again (48 preads per
paid event in the webhook bench). The one writer keeps its pages from write to write;
the readers still read again after each commit (about 7 preads per paid event).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from services.errors import AccountNotFound, StorageContention, StorageUnavailable
from services.faults import SQLITE_BEFORE_COMMIT, fault_point
from services.ledger.model import (
    Account,
    Entry,
    HistoryPosition,
    JournalTransaction,
    Operation,
    SystemAccount,
    format_time,
)
from services.ledger.rules import LedgerRead, execute
from services.store.sqlite_alerts import SqliteAlerts
from services.store.sqlite_operations import SqliteOperations
from services.store.sqlite_purchases import OPEN_ACCOUNT, Prefetched, SqlitePurchases
from services.store.sqlite_schema import TABLES, needs_upgrade, upgrade
from services.store.sqlite_sessions import SqliteSessions
from services.store.sqlite_wal import connect_wal

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
# A wait in this process's writer queue shorter than this leaves SQLite's wait as it is,
# which spares two PRAGMAs on most writes; the total stays within the timeout plus this.
QUEUE_WAIT_IGNORED_MS = 50
SCHEMA_ATTEMPTS = 8
SCHEMA_RETRY_S = 0.05
PAGE_SIZE = 500


ENTRY_COLUMNS = (
    "txn_id, idx, account, amount, type, created_at, user_id, seq,"
    " balance_after, debt_after, counterparty_id, reason"
)
ENTRY_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # one per column above


def _storage_error(exc: sqlite3.Error) -> Exception:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StorageContention(f"SQLite is busy: {exc}")
    return StorageUnavailable(f"SQLite failed: {exc}")


def _entry_data(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["index"] = data.pop("idx")
    return data


def _row_to_entry(row: sqlite3.Row) -> Entry:
    return Entry.from_dict(_entry_data(row))


def _row_to_account(row: sqlite3.Row) -> Account:
    data = dict(row)
    data["holds"] = json.loads(data["holds"])
    return Account.from_dict(data)


class SqliteUnitOfWork:
    def __init__(self, conn: sqlite3.Connection, prefetched: Prefetched | None = None) -> None:
        self.conn = conn
        self.prefetched = prefetched or Prefetched()

    def read(self, op: Operation) -> LedgerRead:
        # One writer at a time: every account is read whole, none blind.
        known = self.prefetched
        existing = (
            None
            if op.transaction_id in known.absent_transactions
            else _load_transaction(self.conn, op.transaction_id)
        )
        accounts = {u: known.accounts[u] for u in op.user_ids if u in known.accounts}
        missing = [u for u in op.user_ids if u not in accounts]
        return LedgerRead(existing, {**accounts, **_load_accounts(self.conn, missing)})

    def write(self, txn: JournalTransaction, accounts: list[Account]) -> None:
        self.conn.execute(
            "INSERT INTO journal_transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                txn.id,
                txn.key,
                txn.fingerprint,
                str(txn.kind),
                str(txn.type),
                txn.reason,
                json.dumps(dict(txn.refs), sort_keys=True),
                txn.created_at,
            ),
        )
        # All entries in one statement, not one run per entry (executemany): each run
        # lets go of the GIL and takes it back.
        rows = [
            (
                e.txn_id,
                e.index,
                e.account,
                e.amount,
                str(e.type),
                e.created_at,
                e.user_id,
                e.seq,
                e.balance_after,
                e.debt_after,
                e.counterparty_id,
                e.reason,
            )
            for e in txn.entries
        ]
        if rows:
            values = ", ".join([ENTRY_ROW] * len(rows))
            self.conn.execute(
                f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES {values}",
                [value for row in rows for value in row],
            )
        self.conn.executemany(
            "UPDATE accounts SET balance = ?, debt = ?, seq = ?, holds = ? WHERE user_id = ?",
            [(a.balance, a.debt, a.seq, json.dumps(a.stored_holds()), a.user_id) for a in accounts],
        )
        fault_point(SQLITE_BEFORE_COMMIT)  # a kill here must leave nothing behind


def _load_accounts(conn: sqlite3.Connection, user_ids: list[str]) -> dict[str, Account]:
    if not user_ids:
        return {}
    marks = ", ".join("?" for _ in user_ids)
    rows = conn.execute(f"SELECT * FROM accounts WHERE user_id IN ({marks})", user_ids)
    return {row["user_id"]: _row_to_account(row) for row in rows}


def _load_transaction(conn: sqlite3.Connection, txn_id: str) -> JournalTransaction | None:
    row = conn.execute("SELECT * FROM journal_transactions WHERE id = ?", (txn_id,)).fetchone()
    if row is None:
        return None
    entries = conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE txn_id = ? ORDER BY idx", (txn_id,)
    ).fetchall()
    return _to_transaction(row, entries)


def _to_transaction(row: sqlite3.Row, entries: list[sqlite3.Row]) -> JournalTransaction:
    data: dict[str, Any] = dict(row)
    data["key"] = data.pop("idem_key")
    data["refs"] = json.loads(data["refs"])
    data["entries"] = [_entry_data(e) for e in entries]
    return JournalTransaction.from_dict(data)


def _wait_for_other_writers(conn: sqlite3.Connection, ms: int) -> None:
    """How long SQLite's busy handler lets ``conn`` wait for another connection's lock."""
    conn.execute(f"PRAGMA busy_timeout={int(ms)}")


class SqliteStore(SqlitePurchases, SqliteOperations, SqliteAlerts, SqliteSessions):
    def __init__(self, path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None  # opened and used under _writing
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        if self._create_schema():
            self._write(upgrade)

    def _create_schema(self) -> bool:
        """Create the tables; True when an older database needs upgrading.

        Several processes opening a new file at once can meet SQLite's deadlock
        refusal ("database is locked" at once, without waiting): try again shortly.
        """
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                # On the writer, like every write: a reader opened here would belong to
                # the thread that builds the app, which serves no request under gunicorn.
                with self._writing, self._guard():
                    conn = self._writer_conn()
                    conn.executescript(TABLES)
                    return needs_upgrade(conn)
            except StorageContention:
                if attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(SCHEMA_RETRY_S * (attempt + 1))
        raise AssertionError("unreachable")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, for reads."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        """The process's connection for writes; only the holder of ``_writing`` uses it."""
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    def _connect(self) -> sqlite3.Connection:
        conn = connect_wal(
            self.path,
            timeout_s=self.busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        _wait_for_other_writers(conn, self.busy_timeout_ms)
        # FULL: a committed credit survives a power cut, not only a crash.
        conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    @contextmanager
    def _one_writer(self) -> Iterator[float]:
        """This process's turn to write; yields the seconds of the busy timeout left
        for SQLite's own wait, so the two waits together stay within it."""
        budget_s = self.busy_timeout_ms / 1000
        began = time.monotonic()
        if not self._writing.acquire(timeout=budget_s):
            raise StorageContention("SQLite is busy: another thread holds the write lock")
        try:
            yield budget_s - (time.monotonic() - began)
        finally:
            self._writing.release()

    def _begin_immediate(self, conn: sqlite3.Connection, left_s: float) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write no longer than ``left_s``."""
        left_ms = int(left_s * 1000)
        if left_ms >= self.busy_timeout_ms - QUEUE_WAIT_IGNORED_MS:
            conn.execute("BEGIN IMMEDIATE")
            return
        _wait_for_other_writers(conn, max(left_ms, 1))
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            _wait_for_other_writers(conn, self.busy_timeout_ms)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._one_writer() as left_s, self._guard():
            conn = self._writer_conn()
            self._begin_immediate(conn, left_s)
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                self._abandon(conn)
                raise
            return result

    def _abandon(self, conn: sqlite3.Connection) -> None:
        """Roll back a write that failed, at its COMMIT too (a full disk): every write of
        the process uses this connection, and one left in a transaction would refuse them
        all. One that cannot even roll back is closed; the next write opens another."""
        if not conn.in_transaction:  # SQLite rolled it back itself
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            with self._lock:
                if conn in self._all:  # unless the store was closed meanwhile
                    self._all.remove(conn)
            conn.close()
            self._writer = None

    def ping(self) -> None:
        with self._guard():
            self._conn().execute("SELECT 1").fetchone()

    def open_account(self, user_id: str, now: datetime) -> Account:
        def work(conn: sqlite3.Connection) -> Account:
            conn.execute(
                OPEN_ACCOUNT,
                (user_id, format_time(now)),
            )
            return _load_accounts(conn, [user_id])[user_id]

        return self._write(work)

    def _unit_of_work(
        self, conn: sqlite3.Connection, prefetched: Prefetched | None = None
    ) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(conn, prefetched)

    def apply(self, op: Operation, now: datetime) -> JournalTransaction:
        return self._write(lambda conn: execute(self._unit_of_work(conn), op, now))

    def get_account(self, user_id: str) -> Account:
        account = self.get_accounts([user_id]).get(user_id)
        if account is None:
            raise AccountNotFound(f"no token account for user {user_id}")
        return account

    def get_accounts(self, user_ids: list[str]) -> dict[str, Account]:
        with self._guard():
            return _load_accounts(self._conn(), user_ids)

    def list_entries(
        self, user_id: str, limit: int, before: int | HistoryPosition | None, txn_type: str | None
    ) -> list[Entry]:
        before_seq = before.seq if isinstance(before, HistoryPosition) else before
        sql = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE user_id = ?"
        args: list[object] = [user_id]
        if txn_type is not None:
            sql += " AND type = ?"
            args.append(txn_type)
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._guard():
            entries = [_row_to_entry(row) for row in self._conn().execute(sql, args)]
        if not entries:
            self.get_account(user_id)  # none: AccountNotFound, as the port says
        return entries

    def get_transaction(self, txn_id: str) -> JournalTransaction | None:
        with self._guard():
            return _load_transaction(self._conn(), txn_id)

    def system_balance(self, account: SystemAccount) -> int:
        with self._guard():
            row = (
                self._conn()
                .execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM entries WHERE account = ?",
                    (str(account),),
                )
                .fetchone()
            )
        return int(row[0])

    def _pages(self, table: str, key: str) -> Iterator[list[sqlite3.Row]]:
        """Every row of ``table`` in ``key`` order, PAGE_SIZE at a time (constant memory)."""
        after = ""
        while True:
            with self._guard():
                rows = (
                    self._conn()
                    .execute(
                        f"SELECT * FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
                        (after, PAGE_SIZE),
                    )
                    .fetchall()
                )
            if not rows:
                return
            yield rows
            after = rows[-1][key]

    def iter_transactions(self) -> Iterator[JournalTransaction]:
        for rows in self._pages("journal_transactions", "id"):
            ids = [row["id"] for row in rows]
            marks = ", ".join("?" for _ in ids)
            with self._guard():
                entries = (
                    self._conn()
                    .execute(
                        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE txn_id IN ({marks})"
                        " ORDER BY txn_id, idx",
                        ids,
                    )
                    .fetchall()
                )
            grouped: dict[str, list[sqlite3.Row]] = {txn_id: [] for txn_id in ids}
            for entry in entries:
                grouped[entry["txn_id"]].append(entry)
            yield from (_to_transaction(row, grouped[row["id"]]) for row in rows)

    def iter_accounts(self) -> Iterator[Account]:
        for rows in self._pages("accounts", "user_id"):
            yield from (_row_to_account(row) for row in rows)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        self._writer = None
