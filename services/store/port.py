"""The storage port: everything the services need from a store.

Every method either completes or raises: a DomainError when a rule forbids
the change, a StorageError when the store failed (nothing was written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

from services.ledger.model import (
    Account,
    Entry,
    HistoryPosition,
    JournalTransaction,
    Operation,
    SystemAccount,
)
from services.operations.model import AuditRecord, EventFailure
from services.payments.model import Purchase, PurchaseLimits, PurchaseState, SecurityAlert, User
from services.payments.purchase_rules import PaidEvent, PaidResult
from services.session_model import SessionRecord


class LedgerStore(Protocol):
    def ping(self) -> None:
        """Raise StorageUnavailable unless the store answers."""

    def open_account(self, user_id: str, now: datetime) -> Account:
        """Create the account if missing; return it either way."""

    def apply(self, op: Operation, now: datetime) -> JournalTransaction:
        """Run ``op`` atomically and idempotently (see ``rules.execute``)."""

    def get_account(self, user_id: str) -> Account:
        """Raise AccountNotFound when there is none."""

    def get_accounts(self, user_ids: list[str]) -> dict[str, Account]:
        """A consistent snapshot of several accounts; missing ones are left out."""

    def list_entries(
        self, user_id: str, limit: int, before: int | HistoryPosition | None, txn_type: str | None
    ) -> list[Entry]:
        """The user's entries, newest first, older than ``before`` (a seq or a position),
        each with its ``seq`` and ``balance_after``. Raise AccountNotFound when the user
        has no account (none of its entries could exist)."""

    def get_transaction(self, txn_id: str) -> JournalTransaction | None:
        """One journal transaction, or None."""

    def system_balance(self, account: SystemAccount) -> int:
        """The total of a system account, summed from the journal."""

    def iter_transactions(self) -> Iterator[JournalTransaction]:
        """Every journal transaction, streamed in pages."""

    def iter_accounts(self) -> Iterator[Account]:
        """Every user account, streamed in pages."""

    def close(self) -> None:
        """Release connections."""


class PurchaseStore(Protocol):
    """Users, purchases, processed Stripe events and security alerts."""

    def ensure_user(self, user: User, now: datetime) -> User:
        """Create the user and their token account if missing; return the stored user.

        Raises UsernameTaken when another user has the username (case-insensitive)."""

    def get_user(self, user_id: str) -> User | None: ...

    def find_user_by_username(self, username: str) -> User | None:
        """Usernames match case-insensitively."""

    def set_customer_id(self, user_id: str, customer_id: str) -> str:
        """Store the Stripe customer id unless one is set; return the one stored."""

    def start_purchase(
        self, purchase: Purchase, limits: PurchaseLimits | None, now: datetime
    ) -> Purchase:
        """Insert the purchase if the buyer's limits allow it, atomically (race-free).

        ``limits=None`` records a purchase that was already paid (never refused).
        The same purchase id again returns the stored purchase."""

    def get_purchase(self, purchase_id: str) -> Purchase | None: ...

    def find_purchase(
        self, *, session_id: str | None = None, payment_intent_id: str | None = None
    ) -> Purchase | None: ...

    def update_purchase(
        self, purchase_id: str, change: Callable[[Purchase], Purchase | None]
    ) -> Purchase:
        """Apply ``change`` to the stored purchase atomically; None means no change."""

    def iter_purchases(self) -> Iterator[Purchase]: ...

    def apply_for_purchase(
        self,
        purchase_id: str,
        user_ids: tuple[str, ...],
        build: Callable[[Purchase], Operation | None],
        mark: Callable[[Purchase, JournalTransaction | None], Purchase | None],
        now: datetime,
    ) -> tuple[JournalTransaction | None, Purchase]:
        """Change tokens and the purchase together, in ONE atomic transaction.

        ``build`` sees the purchase as stored inside the transaction and
        returns the ledger operation to apply (or None); ``mark`` gets the
        purchase and the journal transaction and returns the purchase to
        store (or None). So a credit or a clawback and the purchase's record
        of it never exist one without the other, and a decision is never
        made on a stale read. ``user_ids`` are the accounts the operation
        will touch (for in-process lock ordering)."""

    def paid_event(self, event: PaidEvent, now: datetime) -> PaidResult:
        """Read, check, credit and record a paid event in ONE atomic transaction.

        See ``purchase_rules.apply_paid_event``; nothing is written when the
        result is not ``handled``."""

    def event_processed(self, event_id: str) -> bool: ...

    def event_outcome(self, event_id: str) -> str | None:
        """The outcome recorded for a processed event, or None."""

    def record_event(self, event_id: str, event_type: str, outcome: str, now: datetime) -> None:
        """Record the event as processed; the first outcome recorded stays."""

    def add_alert(self, alert: SecurityAlert) -> None: ...

    def count_alert(self, alert: SecurityAlert) -> None:
        """Store the alert; when one with its id is stored, count one more repeat on it.

        A repeat adds one to ``count`` and sets ``last_at`` to the repeat's
        ``created_at``; the first details stay. Atomic: concurrent repeats from
        several processes lose no count."""

    def list_open_alerts(self, severity: str, limit: int) -> list[SecurityAlert]:
        """Unacknowledged alerts of ``severity``, newest first."""

    def list_alerts(self, limit: int = 100) -> list[SecurityAlert]:
        """Unacknowledged alerts first, each group newest first."""

    def get_setting(self, name: str) -> dict[str, Any] | None:
        """A small operator-owned document, e.g. the Stripe price id of each pack."""

    def put_setting(self, name: str, value: dict[str, Any]) -> None: ...

    def update_setting(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Apply ``change`` to the stored value in ONE transaction; None keeps it.

        For what concurrent writers must not lose (read, decide, write): ``change``
        sees the value as stored inside the transaction and may run again on a retry.
        Returns the value stored afterwards."""


class OperationsStore(Protocol):
    """What the operator's dashboard reads and records."""

    def purchases_created(
        self, start: datetime, end: datetime, state: PurchaseState
    ) -> list[Purchase]:
        """Purchases now in ``state`` created in [start, end), oldest first."""

    def purchases_in_state(self, state: PurchaseState, limit: int) -> list[Purchase]:
        """Purchases now in ``state``, newest first."""

    def purchases_of_user(self, user_id: str, limit: int) -> list[Purchase]:
        """Purchases credited (or to be credited) to the user, newest first."""

    def find_user_by_email(self, email: str) -> User | None: ...

    def record_event_failure(
        self, event_id: str, event_type: str, error: str, now: datetime
    ) -> None:
        """Count one more failed attempt at the event (unresolving it if it was resolved)."""

    def resolve_event_failure(self, event_id: str, now: datetime) -> None:
        """Mark the event's failure resolved; nothing happens when it never failed."""

    def list_event_failures(self, limit: int) -> list[EventFailure]:
        """Unresolved failures, the most recently failed first."""

    def acknowledge_alert(self, alert_id: str, admin_id: str, now: datetime) -> SecurityAlert:
        """Record who reviewed the alert; the first acknowledgement stays.

        Raises AlertNotFound when there is no such alert."""

    def add_audit(self, record: AuditRecord) -> AuditRecord:
        """Store the record unless one has its id; return the stored one."""

    def get_audit(self, audit_id: str) -> AuditRecord | None: ...

    def list_audit(self, limit: int, target: str | None = None) -> list[AuditRecord]:
        """Newest first; only records about ``target`` when given."""


class SessionStore(Protocol):
    """Signed-in sessions, so that the server can end one for every copy of its cookie."""

    def create_session(self, record: SessionRecord) -> None: ...

    def get_session(self, session_id: str) -> SessionRecord | None: ...

    def update_session(self, record: SessionRecord) -> None:
        """Replace a stored session; nothing happens when it has ended meanwhile."""

    def delete_session(self, session_id: str) -> None:
        """End the session; nothing happens when there is none."""

    def set_user_email(self, user_id: str, email: str) -> None:
        """Replace the stored user's email (a verified address from sign-in)."""


class Store(LedgerStore, PurchaseStore, OperationsStore, SessionStore, Protocol):
    """What every adapter implements."""
