"""SQLite specifics: the journal is append-only in the schema itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.errors import StorageContention
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger


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
