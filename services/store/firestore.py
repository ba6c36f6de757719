"""Firestore adapter: one transaction per ledger operation.

Collections: ``accounts/{user_id}`` (balance, debt, seq), ``journal/{txn_id}``
(the whole journal transaction; its id derives from the idempotency key, so
it is also the idempotency record) and ``entries/{txn_id}-{n}`` (one document
per entry, queried for histories and system totals). System accounts have no
document: their totals are summed from ``entries``, so no single document is
written by every purchase.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.errors import AccountNotFound, StorageContention, StorageUnavailable
from services.faults import FIRESTORE_BEFORE_COMMIT, fault_point
from services.ledger.model import (
    Account,
    Entry,
    JournalTransaction,
    Operation,
    SystemAccount,
    format_time,
)
from services.ledger.rules import execute
from services.store.firestore_alerts import FirestoreAlerts
from services.store.firestore_client import open_client
from services.store.firestore_deadline import BudgetSpent, OutageMemory, budget, remaining_s
from services.store.firestore_operations import FirestoreOperations
from services.store.firestore_purchases import FirestorePurchases, create_if_absent
from services.store.firestore_sessions import FirestoreSessions

T = TypeVar("T")
ACCOUNTS, JOURNAL, ENTRIES = "accounts", "journal", "entries"
PAGE_SIZE = 300
# Outer attempts on top of the client's own commit retries; with jittered
# backoff they spread out writers that keep colliding on one account.
CONTENTION_ATTEMPTS = 12
BACKOFF_START_S, BACKOFF_MAX_S = 0.01, 0.5
CALL_TIMEOUT_S = 10.0
# Every call to Firestore ends within this, its retries included (firestore_deadline):
# an unreachable Firestore is a 503 within seconds, never a hang.
CALL_BUDGET_S = 10.0
LOCK_STRIPES = 256
PING_RETRY = Retry(initial=0.1, maximum=0.5, timeout=3.0)
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.RetryError,
)


def _driver_error(exc: BaseException) -> BaseException:
    """The error behind ``exc``: a transaction whose begin failed raises the library's
    ValueError (nothing to roll back), with the driver's error as its context."""
    if isinstance(exc, ValueError) and isinstance(exc.__context__, gexc.GoogleAPIError):
        return exc.__context__
    return exc


def _is_contention(exc: BaseException) -> bool:
    if isinstance(exc, gexc.Aborted):
        return True
    # The client wraps commit aborts that outlived its attempts in a ValueError.
    return isinstance(exc, ValueError) and isinstance(exc.__cause__, gexc.Aborted)


class _FirestoreUnitOfWork:
    """The ledger's reads and writes inside one Firestore transaction.

    ``prefetched`` holds snapshots (by document path) that the caller already read
    in this transaction, so a caller that batches its own reads with the ledger's
    (see ``FirestoreStore.ledger_read_refs``) pays one round trip for all of them.
    """

    def __init__(
        self,
        store: FirestoreStore,
        transaction: firestore.Transaction,
        prefetched: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.transaction = transaction
        self.prefetched = prefetched or {}

    def _get_all(self, refs: list[Any]) -> list[Any]:
        missing = [ref for ref in refs if ref.path not in self.prefetched]
        fetched = list(self.transaction.get_all(missing, timeout=CALL_TIMEOUT_S)) if missing else []
        return [self.prefetched[r.path] for r in refs if r.path in self.prefetched] + fetched

    def read(
        self, txn_id: str, user_ids: tuple[str, ...]
    ) -> tuple[JournalTransaction | None, dict[str, Account]]:
        refs = self.store.ledger_refs(txn_id, user_ids)
        existing: JournalTransaction | None = None
        accounts: dict[str, Account] = {}
        for snap in self._get_all(refs):
            data = snap.to_dict()
            if data is None:
                continue
            if snap.reference.parent.id == JOURNAL:
                existing = JournalTransaction.from_dict(data)
            else:
                account = Account.from_dict(data)
                accounts[account.user_id] = account
        return existing, accounts

    def write(self, txn: JournalTransaction, accounts: list[Account]) -> None:
        self.transaction.create(self.store.journal_ref(txn.id), txn.to_dict())
        for entry in txn.entries:
            self.transaction.create(self.store.entry_ref(entry.id), entry.to_dict())
        for account in accounts:
            self.transaction.update(
                self.store.account_ref(account.user_id),
                {
                    "balance": account.balance,
                    "debt": account.debt,
                    "seq": account.seq,
                    "holds": account.to_dict()["holds"],
                },
            )
        fault_point(FIRESTORE_BEFORE_COMMIT)  # a kill here must leave nothing behind


class FirestoreStore(FirestorePurchases, FirestoreOperations, FirestoreAlerts, FirestoreSessions):
    def __init__(self, project: str, client: firestore.Client | None = None) -> None:
        if not project:
            raise ValueError("firestore:// needs a project id, e.g. firestore://my-project")
        self.db = client or open_client(project)
        self._outage = OutageMemory(CALL_BUDGET_S)  # each call here runs in one budget
        # Threads of this process that write the same account queue here
        # instead of colliding inside Firestore, where two transactions that
        # read and then write one document abort each other. Other processes
        # are still kept apart by the Firestore transaction itself.
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def _local_locks(self, user_ids: tuple[str, ...]) -> ExitStack:
        stack = ExitStack()
        stripes = sorted({zlib.crc32(u.encode()) % LOCK_STRIPES for u in user_ids})
        for stripe in stripes:  # one global order, so two transfers cannot deadlock
            stack.enter_context(self._stripes[stripe])
        return stack

    def account_ref(self, user_id: str) -> Any:
        return self.db.collection(ACCOUNTS).document(user_id)

    def journal_ref(self, txn_id: str) -> Any:
        return self.db.collection(JOURNAL).document(txn_id)

    def entry_ref(self, entry_id: str) -> Any:
        return self.db.collection(ENTRIES).document(entry_id)

    def _call(self, work: Callable[[], T]) -> T:
        """Run a read or a single write in one time budget, turning driver errors
        (a spent budget among them) into StorageError."""
        try:
            with budget(self._outage):
                return work()
        except gexc.GoogleAPIError as exc:
            if _is_contention(exc):
                raise StorageContention(f"Firestore contention: {exc}") from exc
            raise StorageUnavailable(f"Firestore failed: {exc}") from exc

    def _fetch(self, query: Any) -> list[Any]:
        return self._call(lambda: list(query.stream(timeout=CALL_TIMEOUT_S)))

    def _in_transaction(
        self, body: Callable[[firestore.Transaction], T], read_only: bool = False
    ) -> T:
        """Run ``body`` in a transaction, retrying contention with jittered backoff,
        all attempts in one time budget."""
        try:
            with budget(self._outage):
                return self._attempts(body, read_only)
        except BudgetSpent as exc:
            raise StorageUnavailable(f"Firestore did not answer in time: {exc}") from exc

    def _attempts(self, body: Callable[[firestore.Transaction], T], read_only: bool) -> T:
        delay = BACKOFF_START_S
        for attempt in range(CONTENTION_ATTEMPTS):
            transaction = self.db.transaction(read_only=read_only)
            try:
                return firestore.transactional(body)(transaction)  # type: ignore[no-any-return]
            except (gexc.GoogleAPICallError, gexc.RetryError, ValueError) as caught:
                exc = _driver_error(caught)
                retryable = _is_contention(exc) or isinstance(exc, _TRANSIENT)
                if not retryable:
                    if isinstance(exc, ValueError):
                        raise
                    if isinstance(exc, BudgetSpent):
                        raise exc from None  # the budget ends the call: see _in_transaction
                    raise StorageUnavailable(f"Firestore failed: {exc}") from exc
                if attempt == CONTENTION_ATTEMPTS - 1:
                    if _is_contention(exc):
                        raise StorageContention(
                            f"Firestore contention persisted after {CONTENTION_ATTEMPTS} attempts"
                        ) from exc
                    raise StorageUnavailable(f"Firestore unavailable: {exc}") from exc
                left = remaining_s()
                if left is not None and left < delay:  # no time for another attempt
                    if _is_contention(exc):
                        raise StorageContention(f"Firestore contention: {exc}") from exc
                    raise StorageUnavailable(f"Firestore unavailable: {exc}") from exc
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        self._call(lambda: self.db.collection("_health").document("ping").get(retry=PING_RETRY))

    def open_account(self, user_id: str, now: datetime) -> Account:
        fresh = Account(user_id=user_id, created_at=format_time(now))
        create_if_absent(self, self.account_ref(user_id), fresh.to_dict())
        return self.get_account(user_id)

    def ledger_refs(self, txn_id: str, user_ids: tuple[str, ...]) -> list[Any]:
        """Every document the ledger's unit of work reads for one operation."""
        return [self.journal_ref(txn_id)] + [self.account_ref(u) for u in user_ids]

    def _unit_of_work(
        self, transaction: firestore.Transaction, prefetched: Mapping[str, Any] | None = None
    ) -> _FirestoreUnitOfWork:
        return _FirestoreUnitOfWork(self, transaction, prefetched)

    def apply(self, op: Operation, now: datetime) -> JournalTransaction:
        with self._local_locks(op.user_ids):
            return self._in_transaction(
                lambda transaction: execute(self._unit_of_work(transaction), op, now)
            )

    def get_account(self, user_id: str) -> Account:
        snap = self._call(lambda: self.account_ref(user_id).get(timeout=CALL_TIMEOUT_S))
        data = snap.to_dict()
        if data is None:
            raise AccountNotFound(f"no token account for user {user_id}")
        return Account.from_dict(data)

    def get_accounts(self, user_ids: list[str]) -> dict[str, Account]:
        refs = [self.account_ref(u) for u in user_ids]

        def read(transaction: firestore.Transaction) -> dict[str, Account]:
            snaps = transaction.get_all(refs, timeout=CALL_TIMEOUT_S)
            accounts = [Account.from_dict(s.to_dict() or {}) for s in snaps if s.exists]
            return {a.user_id: a for a in accounts}

        # A read-only transaction reads every account at the same moment.
        return self._in_transaction(read, read_only=True)

    def list_entries(
        self, user_id: str, limit: int, before_seq: int | None, txn_type: str | None
    ) -> list[Entry]:
        query = self.db.collection(ENTRIES).where(filter=FieldFilter("user_id", "==", user_id))
        if txn_type is not None:
            query = query.where(filter=FieldFilter("type", "==", txn_type))
        if before_seq is not None:
            query = query.where(filter=FieldFilter("seq", "<", before_seq))
        query = query.order_by("seq", direction=firestore.Query.DESCENDING).limit(limit)
        snaps = self._fetch(query)
        return [Entry.from_dict(snap.to_dict() or {}) for snap in snaps]

    def get_transaction(self, txn_id: str) -> JournalTransaction | None:
        snap = self._call(lambda: self.journal_ref(txn_id).get(timeout=CALL_TIMEOUT_S))
        data = snap.to_dict()
        return None if data is None else JournalTransaction.from_dict(data)

    def system_balance(self, account: SystemAccount) -> int:
        query: Any = (
            self.db.collection(ENTRIES)
            .where(filter=FieldFilter("account", "==", str(account)))
            .sum("amount", alias="total")
        )
        results = self._call(lambda: query.get(timeout=CALL_TIMEOUT_S))
        return int(results[0][0].value) if results else 0

    def _pages(self, collection: str) -> Iterator[dict[str, Any]]:
        """Every document of ``collection``, PAGE_SIZE at a time (constant memory)."""
        base = self.db.collection(collection).order_by("__name__").limit(PAGE_SIZE)
        last: Any = None
        while True:
            query: Any = base if last is None else base.start_after(last)
            snaps = self._fetch(query)
            yield from (snap.to_dict() or {} for snap in snaps)
            if len(snaps) < PAGE_SIZE:
                return
            last = snaps[-1]

    def iter_transactions(self) -> Iterator[JournalTransaction]:
        return (JournalTransaction.from_dict(data) for data in self._pages(JOURNAL))

    def iter_accounts(self) -> Iterator[Account]:
        return (Account.from_dict(data) for data in self._pages(ACCOUNTS))

    def close(self) -> None:
        self.db.close()  # type: ignore[no-untyped-call]
