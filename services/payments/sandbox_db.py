"""The sandbox's SQLite file, standing for Stripe's database: payments, outbox, refunds.

One file for all three, so a change to a payment and the event it causes
commit together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.store.sqlite_wal import connect_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, purchase_id TEXT UNIQUE, created REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL, claimed_until REAL NOT NULL DEFAULT 0, delivered REAL,
    last_status TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered, due);
CREATE TABLE IF NOT EXISTS refunds (
    idempotency_key TEXT PRIMARY KEY, request TEXT NOT NULL, body TEXT NOT NULL
);
"""


class SandboxDb:
    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An autocommit connection: each statement commits unless a transaction is open."""
        conn = connect_wal(self.path, timeout_s=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
