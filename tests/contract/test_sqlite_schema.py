"""A SQLite file made by an older version opens in the current shape, its data kept.

The old shape is the one before holds, the dashboard's purchase columns and
alert acknowledgements had columns of their own: the table definitions of
that time, written here as they were.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from services.payments.model import PurchaseState
from services.store.sqlite import SqliteStore
from services.store.sqlite_schema import ADDED_COLUMNS, needs_upgrade
from tests.support.records import purchase_record

OLD_SHAPE = """
CREATE TABLE accounts (
    user_id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    debt INTEGER NOT NULL CHECK (debt >= 0),
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE purchases (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    session_id TEXT UNIQUE,
    payment_intent_id TEXT,
    body TEXT NOT NULL
) STRICT;
CREATE TABLE security_alerts (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
"""


def _old_file(path: Path) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    purchase = purchase_record("pur_old", "alice", at, state=PurchaseState.NEEDS_REVIEW)
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SHAPE)
    conn.execute("INSERT INTO accounts VALUES ('alice', 40, 0, 2, '2026-01-01T00:00:00.000000Z')")
    conn.execute(
        "INSERT INTO purchases VALUES (?, ?, ?, ?, ?, ?)",
        (
            purchase.id,
            purchase.buyer_id,
            purchase.created_at,
            purchase.session_id,
            None,
            json.dumps(purchase.to_dict()),
        ),
    )
    conn.commit()
    conn.close()


def _columns(path: Path, table: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()


def test_an_old_file_is_brought_to_the_current_shape_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    store = SqliteStore(str(path))
    try:
        for table, column, _, _ in ADDED_COLUMNS:
            assert column in _columns(path, table), (table, column)
        account = store.get_account("alice")
        assert (account.balance, account.holds) == (40, {})
        # Filled from the body: the dashboard's queue finds the old purchase by state.
        assert [p.id for p in store.purchases_in_state(PurchaseState.NEEDS_REVIEW, 10)] == [
            "pur_old"
        ]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert not needs_upgrade(conn)
    finally:
        conn.close()


def test_a_new_file_has_the_current_shape_from_its_create_statements(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(str(path)).close()
    for table, column, _, _ in ADDED_COLUMNS:
        assert column in _columns(path, table), (table, column)
    conn = sqlite3.connect(path)
    try:
        assert not needs_upgrade(conn)
    finally:
        conn.close()
