"""SQLite: repeated security alerts counted on one row, and open alerts by severity."""

from __future__ import annotations

import json

from services.payments.model import SecurityAlert
from services.store.sqlite_purchases import _SqliteBase

# One statement, so a repeat is counted atomically whoever else is writing.
COUNT_ALERT = """
INSERT INTO security_alerts (id, created_at, body, acknowledged_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET body = json_set(
    body,
    '$.count', coalesce(json_extract(body, '$.count'), 1) + 1,
    '$.last_at', excluded.created_at
)
"""
OPEN_OF_SEVERITY = """
SELECT body FROM security_alerts
WHERE acknowledged_at IS NULL AND json_extract(body, '$.severity') = ?
ORDER BY created_at DESC, id LIMIT ?
"""


class SqliteAlerts:
    """Mixed into SqliteStore."""

    def count_alert(self: _SqliteBase, alert: SecurityAlert) -> None:
        body = json.dumps(alert.to_dict(), sort_keys=True)
        self._write(
            lambda conn: conn.execute(
                COUNT_ALERT, (alert.id, alert.created_at, body, alert.acknowledged_at)
            )
        )

    def list_open_alerts(self: _SqliteBase, severity: str, limit: int) -> list[SecurityAlert]:
        with self._guard():
            rows = self._conn().execute(OPEN_OF_SEVERITY, (severity, limit)).fetchall()
        return [SecurityAlert.from_dict(json.loads(row[0])) for row in rows]
