"""Firestore adapter: one transaction per ledger operation, credits that never collide.

Transactions begin inside their first batched read (``firestore_transaction``):
an operation is one read and one commit.

Collections: ``accounts/{user_id}`` (debt, holds, and a part of the balance),
``accounts/{user_id}/shards/{0..SHARDS-1}`` (the rest of the balance, spread
so that many writers can credit one account at once), ``journal/{txn_id}``
(the whole journal transaction; its id derives from the idempotency key, so it
is also the idempotency record) and ``entries/{txn_id}-{n}`` (one document per
entry, queried for histories and system totals). System accounts have no
document: their totals are summed from ``entries``, so no single document is
written by every purchase.

Balances. An account's balance is its main document's ``balance`` plus every
shard's, and its ``seq`` (entry count) likewise with the shards' ``count``.
A credit (a purchase, a grant, a tip's recipient: ``rules.blind_credits``)
reads the idempotency record and the main document (for the debt), and adds to
one random shard with ``Increment``, without reading it. Everything else
(spend, send, hold, clawback, repay) reads the main document and every shard,
so it sees the exact balance, and takes from shards first. It writes the main
document only when the main document's own fields change (debt, holds, or a
balance part from before shards): credits read that document, so a debit that
wrote it would wait on their reads while they wait on its reads of the shards,
a lock cycle that made a spending recipient's tips crawl. So no credit reads
what a plain debit writes, and no debit reads-then-waits on what a credit
holds. A credit to an account in debt reads the debt and leaves it (the
payments code repays it). The balance ceiling of a blind credit is checked
against the part it read, a bound on each credit rather than on the sum of
concurrent ones; it exists to keep sums far from int64.

Histories. A credit cannot know the balance after it without reading every
shard, so its entry stores no ``seq`` or ``balance_after``. Every user entry
carries ``at``, the server's commit time, and histories are ordered by it and
then by id: Firestore serializes transactions in commit-time order, so a
debit's entry comes after every credit it saw. A history page is a consistent
read of the account (one batched read) and its newest entries in that order
(queried as of that read's read_time), each entry's ``balance_after`` and
``seq`` derived by walking back from the current balance; the cursor carries
where it stopped (seq, balance, entry id), so later pages need no fresh
snapshot: older entries never change place.
The transaction an operation returns reads its blind entries' figures as of
its commit time (one batched read at that moment); a replayed or looked-up one
derives them from the sum and count of the account's entries up to it (a
balance is the sum of its entries): one aggregation query and one query for
entries of the same instant. Entries committed at the same instant have no
order of their own and are ordered by id. Entries written before shards
existed have no ``at``: backfill it from ``created_at``.

One module, over 400 lines, on purpose: the sharded layout, the unit of work
that reads and writes it, and the history walk that derives figures from it
must change together.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.errors import (
    AccountNotFound,
    InvalidCursor,
    StorageContention,
    StorageError,
    StorageUnavailable,
)
from services.faults import FIRESTORE_BEFORE_COMMIT, fault_point
from services.ledger.model import (
    Account,
    Entry,
    HistoryPosition,
    JournalTransaction,
    Operation,
    SystemAccount,
    format_time,
)
from services.ledger.rules import LedgerRead, blind_credits, execute
from services.store import firestore_transaction
from services.store.firestore_alerts import FirestoreAlerts
from services.store.firestore_client import open_client
from services.store.firestore_deadline import (
    CALL_BUDGET_S,
    CALL_TIMEOUT_S,
    BudgetSpent,
    OutageMemory,
    budget,
    remaining_s,
)
from services.store.firestore_operations import FirestoreOperations
from services.store.firestore_purchases import FirestorePurchases, create_if_absent
from services.store.firestore_sessions import FirestoreSessions

T = TypeVar("T")
ACCOUNTS, JOURNAL, ENTRIES = "accounts", "journal", "entries"
SHARDS_COLLECTION = "shards"
# Credits spread over this many shard documents per account; a debit reads them all.
# Only ever raise it: a debit reads shards 0..SHARDS-1, so a lower number would hide tokens.
SHARDS = 4
HISTORY_CHUNK = 100
PAGE_SIZE = 300
# Outer attempts on top of the client's own commit retries; with jittered
# backoff they spread out writers that keep colliding on one account.
CONTENTION_ATTEMPTS = 12
BACKOFF_START_S, BACKOFF_MAX_S = 0.01, 0.5
LOCK_STRIPES = 256
PING_RETRY = Retry(initial=0.1, maximum=0.5, timeout=3.0)
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.RetryError,
)


# Fields of an entry document that order histories; the Entry itself does not carry them.
# (``pos`` and ``epoch_*`` were written by an earlier layout and are ignored.)
_ORDER_FIELDS = ("at", "pos", "epoch_balance", "epoch_seq")


def _entry(snap: Any) -> Entry:
    data = {k: v for k, v in (snap.to_dict() or {}).items() if k not in _ORDER_FIELDS}
    return Entry.from_dict(data)


def _commit_time(transaction: firestore.Transaction) -> datetime | None:
    """When ``transaction`` committed: the update time of its first write."""
    results = getattr(transaction, "write_results", None) or []
    return results[0].update_time if results else None


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


def _shard_balances(snaps: list[Any]) -> dict[int, tuple[int, int]]:
    """Shard number -> (balance, entry count), for the shards that exist."""
    found: dict[int, tuple[int, int]] = {}
    for snap in snaps:
        data = snap.to_dict()
        if data is not None:
            found[int(snap.id)] = (int(data.get("balance", 0)), int(data.get("count", 0)))
    return found


class _Stored:
    """One account as a unit of work read it: the main document and, unless the
    account is credited blind, its shards."""

    def __init__(self, main: Mapping[str, Any], shards: dict[int, tuple[int, int]]) -> None:
        # The main document's own part: a balance from before shards, and the entry
        # count of operations that took from it.
        self.base_balance = int(main["balance"])
        self.base_seq = int(main["seq"])
        self.shards = shards
        whole = Account.from_dict(main)
        self.account = replace(
            whole,
            balance=self.base_balance + sum(b for b, _ in shards.values()),
            seq=self.base_seq + sum(n for _, n in shards.values()),
        )

    def take(self, amount: int) -> tuple[int, dict[int, int]]:
        """Where a debit of ``amount`` comes from: shards first, so that most debits
        leave the main document (which every credit reads) alone, then the main
        document's part. Returns that part's new value and the shards changed."""
        need, changed = amount, {}
        for number, (balance, _) in sorted(self.shards.items()):
            taken = min(balance, need)
            if taken:
                changed[number], need = balance - taken, need - taken
        if need > self.base_balance:
            raise AssertionError("a debit larger than the balance it read")
        return self.base_balance - need, changed


def _main_fields(base_balance: int, account: Account) -> dict[str, Any]:
    """What an account's main document holds besides its entry count."""
    return {"balance": base_balance, "debt": account.debt, "holds": account.to_dict()["holds"]}


class _FirestoreUnitOfWork:
    """The ledger's reads and writes inside one Firestore transaction.

    ``prefetched`` holds snapshots (by document path) that the caller already read
    in this transaction, so a caller that batches its own reads with the ledger's
    (see ``FirestoreStore.ledger_refs``) pays one round trip for all of them.
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
        self.read_state: dict[str, _Stored] = {}
        self.blind: frozenset[str] = frozenset()

    def _get_all(self, refs: list[Any]) -> list[Any]:
        missing = [ref for ref in refs if ref.path not in self.prefetched]
        fetched = list(self.transaction.get_all(missing, timeout=CALL_TIMEOUT_S)) if missing else []
        return [self.prefetched[r.path] for r in refs if r.path in self.prefetched] + fetched

    def read(self, op: Operation) -> LedgerRead:
        self.blind = blind_credits(op)
        snaps = {snap.reference.path: snap for snap in self._get_all(self.store.ledger_refs(op))}
        journal = snaps[self.store.journal_ref(op.transaction_id).path].to_dict()
        existing = None if journal is None else JournalTransaction.from_dict(journal)
        accounts: dict[str, Account] = {}
        for user_id in op.user_ids:
            main = snaps[self.store.account_ref(user_id).path].to_dict()
            if main is None:
                continue
            shards = [] if user_id in self.blind else self.store.shard_refs(user_id)
            stored = _Stored(main, _shard_balances([snaps[ref.path] for ref in shards]))
            self.read_state[user_id] = stored
            accounts[user_id] = stored.account
        return LedgerRead(existing, accounts, self.blind)

    def write(self, txn: JournalTransaction, accounts: list[Account]) -> None:
        self.transaction.create(self.store.journal_ref(txn.id), txn.to_dict())
        for entry in txn.entries:
            # Histories sort by commit time, the order Firestore serializes writes in.
            at = {} if entry.user_id is None else {"at": firestore.SERVER_TIMESTAMP}
            self.transaction.create(self.store.entry_ref(entry.id), {**entry.to_dict(), **at})
        for account in accounts:
            if account.user_id in self.blind:
                self._add_to_shard(account)
            else:
                self._rewrite(account)
        fault_point(FIRESTORE_BEFORE_COMMIT)  # a kill here must leave nothing behind

    def _add_to_shard(self, account: Account) -> None:
        """Add what changed to one random shard without reading it: credits do not collide."""
        before = self.read_state[account.user_id].account
        if (account.balance, account.seq) == (before.balance, before.seq):
            return
        shard = self.store.shard_refs(account.user_id)[random.randrange(SHARDS)]
        change = {
            "user_id": account.user_id,  # for the security rules and the shards' owner
            "balance": firestore.Increment(account.balance - before.balance),
            "count": firestore.Increment(account.seq - before.seq),
        }
        self.transaction.set(shard, change, merge=True)

    def _rewrite(self, account: Account) -> None:
        """Write an account read whole. The main document is written only when its own
        fields change (debt, holds, its balance part): credits read it, and a debit
        that wrote it would wait on their reads while they wait on its shard reads."""
        stored = self.read_state[account.user_id]
        before = stored.account
        if account.balance >= before.balance:
            self._add_to_shard(account)
            base, added = stored.base_balance, 0
        else:
            base, shards = stored.take(before.balance - account.balance)
            added = account.seq - before.seq  # counted once, on the first shard written
            refs = self.store.shard_refs(account.user_id)
            for number, balance in shards.items():
                change = {"balance": balance, "count": firestore.Increment(added)}
                self.transaction.update(refs[number], change)
                added = 0
        main = _main_fields(base, account)
        if main != _main_fields(stored.base_balance, before) or added:
            main["seq"] = stored.base_seq + added
            self.transaction.update(self.store.account_ref(account.user_id), main)


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

    def _fetch(self, query: Any, read_time: datetime | None = None) -> list[Any]:
        return self._call(lambda: list(query.stream(timeout=CALL_TIMEOUT_S, read_time=read_time)))

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
            try:
                return firestore_transaction.run(self.db, body, read_only)[0]
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

    def shard_refs(self, user_id: str) -> list[Any]:
        shards = self.account_ref(user_id).collection(SHARDS_COLLECTION)
        return [shards.document(str(number)) for number in range(SHARDS)]

    def ledger_refs(self, op: Operation) -> list[Any]:
        """Every document the ledger's unit of work reads for ``op``: its idempotency
        record, each account's main document and, except for accounts credited
        blind, that account's shards. A plain credit reads no shard."""
        blind = blind_credits(op)
        refs = [self.journal_ref(op.transaction_id)]
        for user_id in op.user_ids:
            refs.append(self.account_ref(user_id))
            refs.extend([] if user_id in blind else self.shard_refs(user_id))
        return refs

    def _unit_of_work(
        self, transaction: firestore.Transaction, prefetched: Mapping[str, Any] | None = None
    ) -> _FirestoreUnitOfWork:
        return _FirestoreUnitOfWork(self, transaction, prefetched)

    def apply(self, op: Operation, now: datetime) -> JournalTransaction:
        # Blind credits never collide, so only the accounts read whole queue here,
        # and requests with one key (which would collide on its idempotency record).
        blind = blind_credits(op)
        names = (op.transaction_id, *(u for u in op.user_ids if u not in blind))
        with self._local_locks(names):
            txn, transaction = self._in_transaction(lambda t: self._execute(t, op, now))
        try:
            at = _commit_time(transaction)
            return self.resolved(txn) if at is None else self._as_committed(txn, at)
        except StorageError:
            # Committed: a failed read of the figures must not report the operation as
            # failed. Its blind entries then show no balance_after; the history does.
            return txn

    def _as_committed(self, txn: JournalTransaction, at: datetime) -> JournalTransaction:
        """``txn``, just committed at ``at``, with its blind entries' figures read as of
        that moment: one batched read of their accounts' documents. (A credit made
        at the same moment as another of the same epoch may later show the other's
        amount in its history's figure: see the module's docstring.)"""
        blind = [e for e in txn.entries if e.user_id is not None and e.seq is None]
        if not blind:
            return txn
        refs = [
            r
            for e in blind
            for r in [self.account_ref(str(e.user_id)), *self.shard_refs(str(e.user_id))]
        ]
        snaps = self._call(
            lambda: list(self.db.get_all(refs, read_time=at, timeout=CALL_TIMEOUT_S))
        )
        accounts = self._accounts(snaps)
        entries = list(txn.entries)
        for entry in blind:
            account = accounts[str(entry.user_id)]
            entries[entry.index] = replace(entry, seq=account.seq, balance_after=account.balance)
        return replace(txn, entries=tuple(entries))

    def _execute(
        self, transaction: firestore.Transaction, op: Operation, now: datetime
    ) -> tuple[JournalTransaction, firestore.Transaction]:
        # The transaction comes back so that its commit time can be read after the commit.
        return execute(self._unit_of_work(transaction), op, now), transaction

    def resolved(self, txn: JournalTransaction) -> JournalTransaction:
        """``txn`` with the seq and balance_after of its blind entries derived, as its
        account's history shows them."""
        blind = [e for e in txn.entries if e.user_id is not None and e.seq is None]
        if not blind:
            return txn
        refs = [self.entry_ref(e.id) for e in blind]
        snaps = self._call(lambda: list(self.db.get_all(refs, timeout=CALL_TIMEOUT_S)))
        orders = {snap.id: snap.to_dict() or {} for snap in snaps if snap.exists}
        entries = list(txn.entries)
        for entry in blind:
            if entry.id in orders:
                balance, seq = self._position(entry, orders[entry.id])
                entries[entry.index] = replace(entry, seq=seq, balance_after=balance)
        return replace(txn, entries=tuple(entries))

    def _position(self, entry: Entry, data: Mapping[str, Any]) -> tuple[int, int]:
        """A blind entry's balance and seq after it: the sum and count of its account's
        entries up to and including it in history order (a balance is the sum of its
        entries, and entries committed before it never change)."""
        mine = self.db.collection(ENTRIES).where(filter=FieldFilter("user_id", "==", entry.user_id))
        total, count = self._sum_and_count(mine.where(filter=FieldFilter("at", "<", data["at"])))
        # Entries committed at the same moment: few, ordered by id.
        same_time = self._fetch(mine.where(filter=FieldFilter("at", "==", data["at"])))
        ties = [int((t.to_dict() or {})["amount"]) for t in same_time if t.id <= entry.id]
        return total + sum(ties), count + len(ties)

    def _sum_and_count(self, query: Any) -> tuple[int, int]:
        aggregation = query.count(alias="count").sum("amount", alias="total")
        results = self._call(lambda: aggregation.get(timeout=CALL_TIMEOUT_S))
        values = {r.alias: r.value for r in results[0]} if results else {}
        return int(values.get("total") or 0), int(values.get("count") or 0)

    def get_account(self, user_id: str) -> Account:
        account = self.get_accounts([user_id]).get(user_id)
        if account is None:
            raise AccountNotFound(f"no token account for user {user_id}")
        return account

    def get_accounts(self, user_ids: list[str]) -> dict[str, Account]:
        return self._accounts(self._account_snapshots(user_ids)) if user_ids else {}

    def _account_snapshots(self, user_ids: list[str]) -> list[Any]:
        """The accounts' main documents and shards, in one BatchGetDocuments.

        Firestore answers one as of one moment (a later answer's read_time vouches that
        the earlier ones had not changed since theirs), as it would a read-only
        transaction, without the transaction's Rollback. The emulator shows a commit's
        documents one by one, so there a read racing a commit can see half of it, in a
        read-only transaction as without (measured: README).
        """
        refs = [self.account_ref(u) for u in user_ids]
        refs += [ref for u in user_ids for ref in self.shard_refs(u)]
        return self._call(lambda: list(self.db.get_all(refs, timeout=CALL_TIMEOUT_S)))

    @staticmethod
    def _accounts(snaps: list[Any]) -> dict[str, Account]:
        """Accounts from their main documents and shards, read together."""
        mains = {s.id: s for s in snaps if s.reference.parent.id == ACCOUNTS and s.exists}
        shards: dict[str, list[Any]] = {user_id: [] for user_id in mains}
        for snap in snaps:
            if snap.reference.parent.id == SHARDS_COLLECTION:
                shards.setdefault(snap.reference.parent.parent.id, []).append(snap)
        return {
            user_id: _Stored(main.to_dict() or {}, _shard_balances(shards[user_id])).account
            for user_id, main in mains.items()
        }

    def list_entries(
        self, user_id: str, limit: int, before: int | HistoryPosition | None, txn_type: str | None
    ) -> list[Entry]:
        position = HistoryPosition(before) if isinstance(before, int) else before
        found: list[Entry] = []
        for entry in self._walk(user_id, position):
            if position is not None and int(entry.seq or 0) >= position.seq:
                continue  # a cursor with a seq alone: walked to from the newest entry
            if txn_type is None or entry.type == txn_type:
                found.append(entry)
                if len(found) == limit:
                    break
        return found

    def _history_chunk(
        self, user_id: str, after: Any = None, read_time: datetime | None = None
    ) -> list[Any]:
        """The next HISTORY_CHUNK entry documents of the user, newest first, after the
        snapshot ``after`` (from the newest when None), as of ``read_time`` if given."""
        query = (
            self.db.collection(ENTRIES)
            .where(filter=FieldFilter("user_id", "==", user_id))
            .order_by("at", direction=firestore.Query.DESCENDING)
            .order_by("__name__", direction=firestore.Query.DESCENDING)
            .limit(HISTORY_CHUNK)
        )
        if after is not None:
            query = query.start_after(after)
        return self._fetch(query, read_time)

    def _newest(self, user_id: str) -> tuple[int, int, list[Any]]:
        """The account's balance and entry count, and its newest entries, at one moment:
        the account's batched read, then the entries queried as of that read's
        read_time. Two RPCs, where a read-only transaction added its Rollback.
        AccountNotFound when there is no account: the ledger reads it nowhere else."""

        def read() -> tuple[int, int, list[Any]]:
            snaps = self._account_snapshots([user_id])
            account = self._accounts(snaps).get(user_id)
            if account is None:
                raise AccountNotFound(f"no token account for user {user_id}")
            at = snaps[0].read_time
            return account.balance, account.seq, self._history_chunk(user_id, read_time=at)

        return self._call(read)  # one time budget for both reads

    def _walk(self, user_id: str, position: HistoryPosition | None) -> Iterator[Entry]:
        """The user's entries, newest first, each with the balance and seq after it:
        derived from a consistent read of the account walking back through its
        entries in history order: commit time, then id."""
        if position is None or position.entry_id is None or position.balance is None:
            balance, seq, snaps = self._newest(user_id)
        else:
            ref = self.entry_ref(position.entry_id)
            start = self._call(lambda: ref.get(timeout=CALL_TIMEOUT_S))
            if not start.exists or (start.to_dict() or {}).get("user_id") != user_id:
                raise InvalidCursor("the cursor is not one this service issued")
            balance, seq = position.balance, position.seq - 1
            snaps = self._history_chunk(user_id, start)
        while True:
            for snap in snaps:
                entry = _entry(snap)
                yield replace(entry, seq=seq, balance_after=balance)
                balance, seq = balance - entry.amount, seq - 1
            if len(snaps) < HISTORY_CHUNK:
                return
            snaps = self._history_chunk(user_id, snaps[-1])

    def get_transaction(self, txn_id: str) -> JournalTransaction | None:
        snap = self._call(lambda: self.journal_ref(txn_id).get(timeout=CALL_TIMEOUT_S))
        data = snap.to_dict()
        if data is None:
            return None
        return self.resolved(JournalTransaction.from_dict(data))

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
        page: list[str] = []
        for data in self._pages(ACCOUNTS):
            page.append(str(data["user_id"]))
            if len(page) == PAGE_SIZE:
                yield from self._with_shards(page)
                page = []
        yield from self._with_shards(page)

    def _with_shards(self, user_ids: list[str]) -> Iterator[Account]:
        accounts = self.get_accounts(user_ids)
        yield from (accounts[u] for u in user_ids if u in accounts)

    def close(self) -> None:
        self.db.close()  # type: ignore[no-untyped-call]
