"""Opening a SQLite file in WAL mode when several processes may open it at once.

Switching a new file to WAL needs an exclusive lock, and SQLite answers
"database is locked" at once instead of calling the busy handler while another
connection holds one, so the timeout given to `connect` does not cover it.
gunicorn's workers all open the same new files as they boot; they retry here.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

RETRY_S = 0.02


def connect_wal(path: str, timeout_s: float, **kwargs: Any) -> sqlite3.Connection:
    """A connection to `path` in WAL mode, waiting up to `timeout_s` for the switch."""
    conn: sqlite3.Connection = sqlite3.connect(path, timeout=timeout_s, **kwargs)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                conn.close()
                raise
            time.sleep(RETRY_S)
