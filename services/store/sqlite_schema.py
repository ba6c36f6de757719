"""The SQLite schema in one place: the current shape, and how an older file gets there.

``TABLES`` creates a new database in its current shape directly. A file made by
an older version is brought up to it by ``upgrade``, the one migration
mechanism: it adds each column in ``ADDED_COLUMNS`` that the file lacks, filled
from the row's JSON body where there is one, then the indexes that need those
columns. ``needs_upgrade`` is a read-only check, so opening an up-to-date file
takes no write lock.
"""

from __future__ import annotations

import sqlite3

TABLES = """CREATE TABLE IF NOT EXISTS accounts (
    user_id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    debt INTEGER NOT NULL CHECK (debt >= 0),
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    holds TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE TABLE IF NOT EXISTS journal_transactions (
    id TEXT PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    refs TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    txn_id TEXT NOT NULL REFERENCES journal_transactions (id),
    idx INTEGER NOT NULL,
    account TEXT NOT NULL,
    amount INTEGER NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    user_id TEXT,
    seq INTEGER,
    balance_after INTEGER,
    debt_after INTEGER,
    counterparty_id TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (txn_id, idx)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_user ON entries (user_id, seq)
    WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_user_type ON entries (user_id, type, seq)
    WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_account ON entries (account, amount);
CREATE TRIGGER IF NOT EXISTS entries_append_only BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS transactions_append_only BEFORE UPDATE ON journal_transactions
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS transactions_no_delete BEFORE DELETE ON journal_transactions
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username_lower TEXT UNIQUE,
    body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS purchases (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    session_id TEXT UNIQUE,
    payment_intent_id TEXT,
    body TEXT NOT NULL,
    state TEXT,
    user_id TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS purchases_by_buyer ON purchases (buyer_id, created_at);
CREATE INDEX IF NOT EXISTS purchases_by_payment_intent ON purchases (payment_intent_id);
CREATE TABLE IF NOT EXISTS stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    processed_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS security_alerts (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    acknowledged_at TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS alerts_by_time ON security_alerts (created_at);
CREATE TABLE IF NOT EXISTS app_settings (name TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS purchase_limits (buyer_id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS event_failures (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    resolved_at TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS event_failures_open ON event_failures (resolved_at, last_at);
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (created_at);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit (target, created_at);
CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE INDEX IF NOT EXISTS users_by_email ON users (json_extract(body, '$.email'));
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
"""

# Columns older files lack: (table, column, declaration, how to fill it from the row).
ADDED_COLUMNS = (
    ("accounts", "holds", "TEXT NOT NULL DEFAULT '{}'", None),
    ("purchases", "state", "TEXT", "json_extract(body, '$.state')"),
    ("purchases", "user_id", "TEXT", "json_extract(body, '$.user_id')"),
    ("security_alerts", "acknowledged_at", "TEXT", "json_extract(body, '$.acknowledged_at')"),
)
# Indexes on added columns: made once the columns exist (an older file has not them yet).
INDEXES_ON_ADDED = {
    "purchases_by_state": "CREATE INDEX IF NOT EXISTS purchases_by_state"
    " ON purchases (state, created_at)",
    "purchases_by_user": "CREATE INDEX IF NOT EXISTS purchases_by_user"
    " ON purchases (user_id, created_at)",
}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def needs_upgrade(conn: sqlite3.Connection) -> bool:
    if any(column not in _columns(conn, table) for table, column, _, _ in ADDED_COLUMNS):
        return True
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return not set(INDEXES_ON_ADDED) <= names


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older file to the current shape.

    The caller holds the write lock, so two processes starting together cannot
    both add a column. Only the constant names and expressions above are
    interpolated.
    """
    for table, column, declaration, fill in ADDED_COLUMNS:
        if column not in _columns(conn, table):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if fill is not None:
                conn.execute(f"UPDATE {table} SET {column} = {fill}")  # noqa: S608
    for statement in INDEXES_ON_ADDED.values():
        conn.execute(statement)
