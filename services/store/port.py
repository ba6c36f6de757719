"""The storage port: everything the services need from a store.

Every method either completes or raises: a DomainError when a rule forbids
the change, a StorageError when the store failed (nothing was written).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from services.ledger.model import Account, Entry, JournalTransaction, Operation, SystemAccount


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
        self, user_id: str, limit: int, before_seq: int | None, txn_type: str | None
    ) -> list[Entry]:
        """The user's entries, newest first, with seq below ``before_seq``."""

    def get_transaction(self, txn_id: str) -> JournalTransaction | None:
        """One journal transaction, or None."""

    def system_balance(self, account: SystemAccount) -> int:
        """The total of a system account, summed from the journal."""

    def iter_transactions(self) -> Iterator[JournalTransaction]:
        """Every journal transaction, streamed in pages."""

    def close(self) -> None:
        """Release connections."""
