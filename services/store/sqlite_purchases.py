"""SQLite tables for users, purchases, Stripe events and security alerts.

``purchase_limits`` keeps each buyer's starts of the last day, read and rewritten
by ``start_purchase`` as Firestore's ``purchase_limits/{buyer_id}`` is, through
the same ``start_rules.start``: one meaning of the limits on both stores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from services.errors import PurchaseNotFound, UsernameTaken
from services.ledger.model import Account, JournalTransaction, Operation, format_time
from services.ledger.rules import UnitOfWork
from services.payments import purchase_rules as rules
from services.payments.model import Purchase, PurchaseLimits, SecurityAlert, User
from services.payments.start_rules import StartRecord, start

T = TypeVar("T")

OPEN_ACCOUNT = (
    "INSERT OR IGNORE INTO accounts (user_id, balance, debt, seq, created_at)"
    " VALUES (?, 0, 0, 0, ?)"
)


@dataclass
class Prefetched:
    """What a write transaction read before its ledger operation: still current in it,
    so the ledger's unit of work does not read it again."""

    accounts: dict[str, Account] = field(default_factory=dict)
    absent_transactions: set[str] = field(default_factory=set)  # journal ids not stored


class _SqliteBase(Protocol):
    def _conn(self) -> sqlite3.Connection: ...

    def _guard(self) -> AbstractContextManager[None]: ...

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    def _unit_of_work(
        self, conn: sqlite3.Connection, prefetched: Prefetched | None = None
    ) -> UnitOfWork: ...

    def _pages(self, table: str, key: str) -> Iterator[list[sqlite3.Row]]: ...


INSERT_PURCHASE = (
    "INSERT INTO purchases (id, buyer_id, created_at, session_id, payment_intent_id, body,"
    " state, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _purchase_row(p: Purchase) -> tuple[Any, ...]:
    body = json.dumps(p.to_dict(), sort_keys=True)
    return (
        p.id,
        p.buyer_id,
        p.created_at,
        p.session_id,
        p.payment_intent_id,
        body,
        str(p.state),
        p.user_id,
    )


def _load_purchase(conn: sqlite3.Connection, where: str, arg: str) -> Purchase | None:
    row = conn.execute(f"SELECT body FROM purchases WHERE {where} = ?", (arg,)).fetchone()
    return None if row is None else Purchase.from_dict(json.loads(row[0]))


def _indexed(purchase: Purchase) -> dict[str, str | None]:
    """The columns a purchase's row repeats from its body, each indexed. An UPDATE that
    names an indexed column rewrites its index entry even to the same value, one more
    page for the commit to write, so a save names only those that changed (a paid event
    then writes 13 WAL pages instead of 16: bench/rpc_bench.py)."""
    return {
        "session_id": purchase.session_id,
        "payment_intent_id": purchase.payment_intent_id,
        "state": str(purchase.state),
        "user_id": purchase.user_id,
    }


def _save_purchase(conn: sqlite3.Connection, purchase: Purchase, before: Purchase | None) -> None:
    """Write ``purchase`` over its row, which held ``before`` (None: not known)."""
    values = _indexed(purchase)
    old = _indexed(before) if before is not None else None
    changed = [name for name, value in values.items() if old is None or old[name] != value]
    columns = ", ".join(f"{name} = :{name}" for name in ("body", *changed))
    body = json.dumps(purchase.to_dict(), sort_keys=True)
    conn.execute(
        f"UPDATE purchases SET {columns} WHERE id = :id",  # names from _indexed only
        {**values, "body": body, "id": purchase.id},
    )


def _load_user(conn: sqlite3.Connection, user_id: str) -> User | None:
    row = conn.execute("SELECT body FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else User.from_dict(json.loads(row[0]))


# Everything a paid event reads inside its write transaction, in one statement: each
# statement lets go of the GIL, and with other requests running, taking it back cost
# more CPU than the reads themselves. The deferred records are named after their kind.
_DEFERRED_COLUMNS = ",\n    ".join(
    f"(SELECT body FROM app_settings WHERE name = :{kind}) AS {kind}"
    for kind in rules.DEFERRED_KINDS
)
PAID_READ = f"""SELECT
    (SELECT outcome FROM stripe_events WHERE id = :event) AS event_outcome,
    EXISTS (SELECT 1 FROM event_failures WHERE id = :event AND resolved_at IS NULL)
        AS failure_open,
    (SELECT body FROM purchases WHERE id = :purchase) AS purchase,
    EXISTS (SELECT 1 FROM users WHERE id = :user) AS user_exists,
    EXISTS (SELECT 1 FROM journal_transactions WHERE id = :txn) AS credited,
    {_DEFERRED_COLUMNS},
    accounts.user_id, accounts.balance, accounts.debt, accounts.seq, accounts.created_at,
    accounts.holds
FROM (SELECT 1) LEFT JOIN accounts ON accounts.user_id = :user"""
ACCOUNT_COLUMNS = ("user_id", "balance", "debt", "seq", "created_at", "holds")


class _SqliteStart:
    """``start_rules.start``'s unit of work, inside the store's write transaction."""

    def __init__(self, conn: sqlite3.Connection, purchase: Purchase) -> None:
        self.conn, self.purchase_id, self.buyer_id = conn, purchase.id, purchase.buyer_id

    def stored(self) -> Purchase | None:
        return _load_purchase(self.conn, "id", self.purchase_id)

    def record(self) -> StartRecord | None:
        row = self.conn.execute(
            "SELECT body FROM purchase_limits WHERE buyer_id = ?", (self.buyer_id,)
        ).fetchone()
        return None if row is None else StartRecord.from_dict(json.loads(row[0]))

    def recent(self, since: datetime) -> list[Purchase]:
        rows = self.conn.execute(
            "SELECT body FROM purchases WHERE buyer_id = ? AND created_at >= ?",
            (self.buyer_id, format_time(since)),
        )
        return [Purchase.from_dict(json.loads(row[0])) for row in rows]

    def purchases(self, ids: list[str]) -> list[Purchase]:
        found = (_load_purchase(self.conn, "id", purchase_id) for purchase_id in ids)
        return [p for p in found if p is not None]

    def insert(self, purchase: Purchase, record: StartRecord | None) -> None:
        self.conn.execute(INSERT_PURCHASE, _purchase_row(purchase))
        if record is not None:
            self.conn.execute(
                "INSERT OR REPLACE INTO purchase_limits VALUES (?, ?)",
                (self.buyer_id, json.dumps(record.to_dict())),
            )


class _PurchaseWork:
    """The purchase rules' reads and writes inside one BEGIN IMMEDIATE transaction."""

    def __init__(self, store: _SqliteBase, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn
        self.prefetched = Prefetched()  # what read_paid read, for the ledger
        self.stored: dict[str, Purchase] = {}  # each purchase's row as read or last written

    def purchase(self, purchase_id: str) -> Purchase | None:
        return self._keep(_load_purchase(self.conn, "id", purchase_id))

    def _keep(self, purchase: Purchase | None) -> Purchase | None:
        if purchase is not None:
            self.stored[purchase.id] = purchase
        return purchase

    def save_purchase(self, purchase: Purchase) -> None:
        _save_purchase(self.conn, purchase, self.stored.get(purchase.id))
        self.stored[purchase.id] = purchase

    def ledger(self) -> UnitOfWork:
        # Handed over once: the ledger's write makes them stale.
        prefetched, self.prefetched = self.prefetched, Prefetched()
        return self.store._unit_of_work(self.conn, prefetched)

    def add_event_once(self, record: rules.EventRecord) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO stripe_events VALUES (?, ?, ?, ?)",
            (record.event_id, record.type, record.outcome, record.processed_at),
        )

    def resolve_failure(self, event_id: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE event_failures SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
            (format_time(now), event_id),
        )

    def read_paid(self, locator: rules.PaidLocator) -> rules.PaidRead:
        intent = locator.payment_intent
        names = {
            kind: rules.deferred_name(intent, kind) if intent else None
            for kind in rules.DEFERRED_KINDS
        }
        txn_id = locator.credit.transaction_id
        ids = {
            "event": locator.event_id,
            "purchase": locator.purchase_id,
            "user": locator.user_id,
            "txn": txn_id,
        }
        row = self.conn.execute(PAID_READ, {**ids, **names}).fetchone()
        account = None if row["user_id"] is None else _account(row)
        if account is not None:
            self.prefetched.accounts[account.user_id] = account
        if not row["credited"]:
            self.prefetched.absent_transactions.add(txn_id)
        body, outcome = row["purchase"], row["event_outcome"]
        kept = {kind: json.loads(row[kind]) for kind in names if row[kind] is not None}
        return rules.PaidRead(
            event_outcome=None if outcome is None else str(outcome),
            failure_open=bool(row["failure_open"]),
            purchase=self._keep(None if body is None else Purchase.from_dict(json.loads(body))),
            user_exists=bool(row["user_exists"]),
            account=account,
            deferred={kind: record for kind, record in kept.items() if record},
        )


def _account(row: sqlite3.Row) -> Account:
    """The account in ``row``, whatever else the row holds."""
    data = {name: row[name] for name in ACCOUNT_COLUMNS}
    data["holds"] = json.loads(data["holds"])
    return Account.from_dict(data)


class SqlitePurchases:
    """Mixed into SqliteStore; every write runs under BEGIN IMMEDIATE."""

    def ensure_user(self: _SqliteBase, user: User, now: datetime) -> User:
        # Nearly every call finds the user: answer from a read, without the write lock.
        with self._guard():
            known = _load_user(self._conn(), user.id)
        if known is not None:
            return known

        def work(conn: sqlite3.Connection) -> User:
            existing = _load_user(conn, user.id)
            if existing is not None:
                return existing
            try:
                conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?)",
                    (user.id, user.to_dict()["username_lower"], json.dumps(user.to_dict())),
                )
            except sqlite3.IntegrityError as exc:
                raise UsernameTaken(f"the username {user.username!r} is taken") from exc
            conn.execute(OPEN_ACCOUNT, (user.id, format_time(now)))
            return user

        return self._write(work)

    def get_user(self: _SqliteBase, user_id: str) -> User | None:
        with self._guard():
            return _load_user(self._conn(), user_id)

    def find_user_by_username(self: _SqliteBase, username: str) -> User | None:
        with self._guard():
            row = (
                self._conn()
                .execute("SELECT body FROM users WHERE username_lower = ?", (username.lower(),))
                .fetchone()
            )
        return None if row is None else User.from_dict(json.loads(row[0]))

    def set_customer_id(self: _SqliteBase, user_id: str, customer_id: str) -> str:
        """Store the Stripe customer unless one is stored already; return the stored one."""

        def work(conn: sqlite3.Connection) -> str:
            user = _load_user(conn, user_id)
            if user is None:
                raise PurchaseNotFound(f"no user {user_id}")
            if user.stripe_customer_id:
                return user.stripe_customer_id
            body = {**user.to_dict(), "stripe_customer_id": customer_id}
            conn.execute("UPDATE users SET body = ? WHERE id = ?", (json.dumps(body), user_id))
            return customer_id

        return self._write(work)

    def start_purchase(
        self: _SqliteBase, purchase: Purchase, limits: PurchaseLimits | None, now: datetime
    ) -> Purchase:
        return self._write(lambda conn: start(_SqliteStart(conn, purchase), purchase, limits, now))

    def get_purchase(self: _SqliteBase, purchase_id: str) -> Purchase | None:
        with self._guard():
            return _load_purchase(self._conn(), "id", purchase_id)

    def find_purchase(
        self: _SqliteBase, *, session_id: str | None = None, payment_intent_id: str | None = None
    ) -> Purchase | None:
        with self._guard():
            if session_id is not None:
                return _load_purchase(self._conn(), "session_id", session_id)
            if payment_intent_id is not None:
                return _load_purchase(self._conn(), "payment_intent_id", payment_intent_id)
        return None

    def update_purchase(
        self: _SqliteBase, purchase_id: str, change: Callable[[Purchase], Purchase | None]
    ) -> Purchase:
        """Read, change and write one purchase atomically; ``change`` returns None for no-op."""
        # A change that would do nothing to the committed purchase needs no write lock.
        with self._guard():
            seen = _load_purchase(self._conn(), "id", purchase_id)
        if seen is not None and change(seen) in (None, seen):
            return seen

        return self._write(
            lambda conn: rules.update_purchase(_PurchaseWork(self, conn), purchase_id, change)
        )

    def apply_for_purchase(
        self: _SqliteBase,
        purchase_id: str,
        user_ids: tuple[str, ...],
        build: Callable[[Purchase], Operation | None],
        mark: Callable[[Purchase, JournalTransaction | None], Purchase | None],
        now: datetime,
    ) -> tuple[JournalTransaction | None, Purchase]:
        def work(conn: sqlite3.Connection) -> tuple[JournalTransaction | None, Purchase]:
            return rules.apply_for_purchase(
                _PurchaseWork(self, conn), purchase_id, build, mark, now
            )

        return self._write(work)

    def paid_event(self: _SqliteBase, event: rules.PaidEvent, now: datetime) -> rules.PaidResult:
        """One write transaction: read, check, credit and record."""
        return self._write(
            lambda conn: rules.apply_paid_event(_PurchaseWork(self, conn), event, now)
        )

    def iter_purchases(self: _SqliteBase) -> Iterator[Purchase]:
        for rows in self._pages("purchases", "id"):
            yield from (Purchase.from_dict(json.loads(row["body"])) for row in rows)

    def event_processed(self: _SqliteBase, event_id: str) -> bool:
        return SqlitePurchases.event_outcome(self, event_id) is not None

    def event_outcome(self: _SqliteBase, event_id: str) -> str | None:
        with self._guard():
            row = (
                self._conn()
                .execute("SELECT outcome FROM stripe_events WHERE id = ?", (event_id,))
                .fetchone()
            )
        return None if row is None else str(row[0])

    def record_event(
        self: _SqliteBase, event_id: str, event_type: str, outcome: str, now: datetime
    ) -> None:
        record = rules.event_record(event_id, event_type, outcome, now)
        self._write(lambda conn: rules.record_event(_PurchaseWork(self, conn), record))

    def add_alert(self: _SqliteBase, alert: SecurityAlert) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO security_alerts (id, created_at, body, acknowledged_at)"
                " VALUES (?, ?, ?, ?)",
                (
                    alert.id,
                    alert.created_at,
                    json.dumps(alert.to_dict(), sort_keys=True),
                    alert.acknowledged_at,
                ),
            )
        )

    def list_alerts(self: _SqliteBase, limit: int = 100) -> list[SecurityAlert]:
        with self._guard():
            rows = (
                self._conn()
                .execute(
                    "SELECT body FROM security_alerts"
                    " ORDER BY acknowledged_at IS NOT NULL, created_at DESC, id LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [SecurityAlert.from_dict(json.loads(r[0])) for r in rows]

    def get_setting(self: _SqliteBase, name: str) -> dict[str, Any] | None:
        with self._guard():
            row = (
                self._conn()
                .execute("SELECT body FROM app_settings WHERE name = ?", (name,))
                .fetchone()
            )
        return None if row is None else dict(json.loads(row[0]))

    def put_setting(self: _SqliteBase, name: str, value: dict[str, Any]) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO app_settings VALUES (?, ?)", (name, json.dumps(value))
            )
        )

    def update_setting(
        self: _SqliteBase,
        name: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        def work(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT body FROM app_settings WHERE name = ?", (name,)).fetchone()
            kept = None if row is None else dict(json.loads(row[0]))
            changed = change(None if kept is None else dict(kept))
            if changed is None:
                return kept
            conn.execute(
                "INSERT OR REPLACE INTO app_settings VALUES (?, ?)", (name, json.dumps(changed))
            )
            return changed

        return self._write(work)
