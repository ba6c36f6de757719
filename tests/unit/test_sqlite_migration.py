"""A database made before the dashboard existed opens, keeps its data and gains the new columns."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from services.payments.model import PurchaseState
from services.store.sqlite import SqliteStore

# The purchases and alerts tables as the previous version made them.
OLD_SCHEMA = """
CREATE TABLE purchases (
    id TEXT PRIMARY KEY, buyer_id TEXT NOT NULL, created_at TEXT NOT NULL,
    session_id TEXT UNIQUE, payment_intent_id TEXT, body TEXT NOT NULL
) STRICT;
CREATE TABLE security_alerts (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, body TEXT NOT NULL)
    STRICT;
"""
STAMP = "2026-05-01T10:00:00.000000Z"
LATER = datetime(2026, 5, 2, tzinfo=UTC)


def old_database(path: Path) -> None:
    body = {
        "id": "pur_old",
        "buyer_id": "payer",
        "user_id": "friend",
        "pack_id": "popular",
        "tokens": 110,
        "amount": 999,
        "currency": "usd",
        "state": "needs_review",
        "created_at": STAMP,
        "updated_at": STAMP,
    }
    alert = {"id": "alert_old", "type": "t", "severity": "info", "details": {}, "created_at": STAMP}
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.execute(
        "INSERT INTO purchases VALUES (?, ?, ?, ?, ?, ?)",
        ("pur_old", "payer", STAMP, "cs_old", None, json.dumps(body)),
    )
    conn.execute(
        "INSERT INTO security_alerts VALUES (?, ?, ?)", ("alert_old", STAMP, json.dumps(alert))
    )
    conn.commit()
    conn.close()


def test_an_old_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path)
    store = SqliteStore(str(path))
    assert [p.id for p in store.purchases_in_state(PurchaseState.NEEDS_REVIEW, 5)] == ["pur_old"]
    assert [p.id for p in store.purchases_of_user("friend", 5)] == ["pur_old"]
    [alert] = store.list_alerts()
    assert alert.acknowledged_at is None
    store.acknowledge_alert("alert_old", "admin", LATER)
    store.close()
    reopened = SqliteStore(str(path))  # a second open finds nothing left to do
    assert reopened.list_alerts()[0].acknowledged_by == "admin"
    reopened.close()
