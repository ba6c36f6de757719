"""Firestore collections for users, purchases, Stripe events and security alerts.

``purchase_limits/{buyer_id}`` holds a buyer's starts of the last day (purchase
id and time; ``services/payments/start_rules.py``). Starting a purchase reads it
and the purchase by id in one batched read, and writes both in one commit: two
concurrent checkouts of one buyer conflict on that document, so they cannot both
take the last free slot, while checkouts of different buyers share no document
and no query range, so they never wait on each other. The buyer's purchases
are read by id only when the record says a limit may be reached; a missing
record (purchases from before it) is built once from a query run outside the
transaction. ``usernames/{lowercase}`` makes usernames unique.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.errors import PurchaseNotFound, StorageUnavailable, UsernameTaken
from services.ledger.model import Account, JournalTransaction, Operation, format_time, parse_time
from services.ledger.rules import UnitOfWork
from services.payments import purchase_rules as rules
from services.payments.model import Purchase, PurchaseLimits, SecurityAlert, User
from services.payments.start_rules import StartRecord, start

T = TypeVar("T")
USERS, USERNAMES, PURCHASES, EVENTS, ALERTS = (
    "users",
    "usernames",
    "purchases",
    "stripe_events",
    "security_alerts",
)
SETTINGS = "app_settings"
FAILURES = "event_failures"
LIMITS = "purchase_limits"
# A TTL policy on ``expire_at`` (a Timestamp) deletes processed-event records once
# Stripe can no longer resend the event: it retries for up to 30 days (README).
EVENT_RETENTION = timedelta(days=35)


class _FirestoreBase(Protocol):
    db: Any

    def _call(self, work: Callable[[], T]) -> T: ...

    def _fetch(self, query: Any) -> list[Any]: ...

    def _pages(self, collection: str) -> Iterator[dict[str, Any]]: ...

    def _in_transaction(
        self, body: Callable[[firestore.Transaction], T], read_only: bool = False
    ) -> T: ...

    def _local_locks(self, user_ids: tuple[str, ...]) -> AbstractContextManager[None]: ...

    def account_ref(self, user_id: str) -> Any: ...

    def _unit_of_work(
        self, transaction: firestore.Transaction, prefetched: Mapping[str, Any] | None = None
    ) -> UnitOfWork: ...

    def ledger_refs(self, op: Operation) -> list[Any]: ...


def _doc(store: _FirestoreBase, collection: str, doc_id: str) -> Any:
    return store.db.collection(collection).document(doc_id)


def _data(store: _FirestoreBase, collection: str, doc_id: str) -> dict[str, Any] | None:
    """One document's fields, or None: the batched read of one document that
    DocumentReference.get makes, through the client's get_all (firestore_reads)."""
    ref = _doc(store, collection, doc_id)
    snaps = store._call(lambda: list(store.db.get_all([ref])))
    return snaps[0].to_dict() if snaps else None


class _Calls(Protocol):
    def _call(self, work: Callable[[], T]) -> T: ...


def create_if_absent(store: _Calls, ref: Any, data: dict[str, Any]) -> bool:
    """Create the document; False when it exists already (the stored one stays)."""
    try:
        store._call(lambda: ref.create(data))
    except StorageUnavailable as exc:
        if not isinstance(exc.__cause__, gexc.Conflict):
            raise
        return False
    return True


def _get(transaction: Any, ref: Any) -> dict[str, Any] | None:
    snap = next(iter(transaction.get_all([ref])), None)
    return None if snap is None else snap.to_dict()


def _event_data(record: rules.EventRecord) -> dict[str, Any]:
    now = parse_time(record.processed_at)
    return {
        "type": record.type,
        "outcome": record.outcome,
        "processed_at": record.processed_at,
        "expire_at": now + EVENT_RETENTION,  # a datetime is stored as a Timestamp
    }


class _PurchaseWork:
    """The purchase rules' reads and writes inside one Firestore transaction."""

    def __init__(self, store: _FirestoreBase, transaction: firestore.Transaction) -> None:
        self.store = store
        self.transaction = transaction
        self.prefetched: dict[str, Any] = {}  # snapshots by path, for the ledger
        self.stored: dict[str, dict[str, Any]] = {}  # purchases read here, by id

    def purchase(self, purchase_id: str) -> Purchase | None:
        data = _get(self.transaction, _doc(self.store, PURCHASES, purchase_id))
        self._remember(purchase_id, data)
        return None if data is None else Purchase.from_dict(data)

    def _remember(self, purchase_id: str, data: dict[str, Any] | None) -> None:
        """Keep a purchase as read, for save_purchase to write only what changed."""
        if data is not None:
            self.stored[purchase_id] = data

    def save_purchase(self, purchase: Purchase) -> None:
        """Write the fields that changed since this transaction read the purchase (the
        transaction fails if it changed meanwhile), or all of them for a new one:
        encoding a whole purchase was a large part of a paid event's CPU."""
        ref = _doc(self.store, PURCHASES, purchase.id)
        data = purchase.to_dict()
        stored = self.stored.get(purchase.id)
        if stored is None:
            self.transaction.set(ref, data)
            return
        changed = {name: value for name, value in data.items() if stored.get(name) != value}
        if changed:  # top-level names only: a map value replaces the whole field
            self.transaction.update(ref, changed)

    def ledger(self) -> UnitOfWork:
        return self.store._unit_of_work(self.transaction, self.prefetched)

    def add_event_once(self, record: rules.EventRecord) -> None:
        # Read in this transaction (read_paid): a concurrent create aborts one of the two.
        ref = _doc(self.store, EVENTS, record.event_id)
        self.transaction.create(ref, _event_data(record))

    def resolve_failure(self, event_id: str, now: datetime) -> None:
        update = {"resolved": True, "resolved_at": format_time(now)}
        self.transaction.update(_doc(self.store, FAILURES, event_id), update)

    def read_paid(self, locator: rules.PaidLocator) -> rules.PaidRead:
        """One batched read: the paid event's own documents and the credit's."""
        named = {
            "event": _doc(self.store, EVENTS, locator.event_id),
            "failure": _doc(self.store, FAILURES, locator.event_id),
            "purchase": _doc(self.store, PURCHASES, locator.purchase_id),
            "user": _doc(self.store, USERS, locator.user_id),
            "account": self.store.account_ref(locator.user_id),
        }
        if locator.payment_intent:
            for kind in rules.DEFERRED_KINDS:
                name = rules.deferred_name(locator.payment_intent, kind)
                named[kind] = _doc(self.store, SETTINGS, name)
        ledger = self.store.ledger_refs(locator.credit)
        refs = {ref.path: ref for ref in [*named.values(), *ledger]}
        snaps = self.transaction.get_all(list(refs.values()))
        self.prefetched = {snap.reference.path: snap for snap in snaps}
        data = {key: self._data(ref) for key, ref in named.items()}
        self._remember(locator.purchase_id, data["purchase"])
        return _paid_read(data)

    def _data(self, ref: Any) -> dict[str, Any] | None:
        snap = self.prefetched.get(ref.path)
        return None if snap is None else snap.to_dict()


def _paid_read(data: Mapping[str, dict[str, Any] | None]) -> rules.PaidRead:
    event, failure, purchase, account = (
        data["event"],
        data["failure"],
        data["purchase"],
        data["account"],
    )
    return rules.PaidRead(
        event_outcome=None if event is None else str(event.get("outcome", "")),
        failure_open=failure is not None and not failure.get("resolved"),
        purchase=None if purchase is None else Purchase.from_dict(purchase),
        user_exists=data["user"] is not None,
        account=None if account is None else Account.from_dict(account),
        deferred={k: v for k in rules.DEFERRED_KINDS if (v := data.get(k))},
    )


class _FirestoreStart:
    """``start_rules.start``'s unit of work: the purchase and the buyer's record in one read."""

    def __init__(
        self, store: _FirestoreBase, transaction: firestore.Transaction, purchase: Purchase
    ) -> None:
        self.store, self.transaction, self.buyer_id = store, transaction, purchase.buyer_id
        self.ref = _doc(store, PURCHASES, purchase.id)
        self.record_ref = _doc(store, LIMITS, purchase.buyer_id)
        found = {
            snap.reference.path: snap.to_dict()
            for snap in transaction.get_all([self.ref, self.record_ref])
        }
        self._stored, self._record = found.get(self.ref.path), found.get(self.record_ref.path)

    def stored(self) -> Purchase | None:
        return None if self._stored is None else Purchase.from_dict(self._stored)

    def record(self) -> StartRecord | None:
        return None if self._record is None else StartRecord.from_dict(self._record)

    def recent(self, since: datetime) -> list[Purchase]:
        # Not in the transaction: a range read there would make other buyers' starts
        # wait. Runs once per buyer; a racing first start conflicts on the record.
        query = (
            self.store.db.collection(PURCHASES)
            .where(filter=FieldFilter("buyer_id", "==", self.buyer_id))
            .where(filter=FieldFilter("created_at", ">=", format_time(since)))
        )
        return [Purchase.from_dict(snap.to_dict() or {}) for snap in self.store._fetch(query)]

    def purchases(self, ids: list[str]) -> list[Purchase]:
        refs = [_doc(self.store, PURCHASES, purchase_id) for purchase_id in ids]
        snaps = self.transaction.get_all(refs) if refs else []
        found = (snap.to_dict() for snap in snaps)
        return [Purchase.from_dict(data) for data in found if data is not None]

    def insert(self, purchase: Purchase, record: StartRecord | None) -> None:
        self.transaction.create(self.ref, purchase.to_dict())
        if record is not None:
            self.transaction.set(self.record_ref, record.to_dict())


class _EventCreate:
    """An event record written on its own: one create, no transaction."""

    def __init__(self, store: _FirestoreBase) -> None:
        self.store = store

    def add_event_once(self, record: rules.EventRecord) -> None:
        # create, not set: two deliveries that both finish keep the first outcome.
        ref = _doc(self.store, EVENTS, record.event_id)
        create_if_absent(self.store, ref, _event_data(record))


class FirestorePurchases:
    """Mixed into FirestoreStore."""

    def ensure_user(self: _FirestoreBase, user: User, now: datetime) -> User:
        user_ref = _doc(self, USERS, user.id)
        name_ref = _doc(self, USERNAMES, user.username.lower()) if user.username else None

        known = _data(self, USERS, user.id)
        if known is not None:  # the common case, answered without a transaction
            return User.from_dict(known)

        def body(transaction: firestore.Transaction) -> User:
            existing = _get(transaction, user_ref)
            if existing is not None:
                return User.from_dict(existing)
            owner = _get(transaction, name_ref) if name_ref is not None else None
            if owner is not None and owner.get("user_id") != user.id:
                raise UsernameTaken(f"the username {user.username!r} is taken")
            account = _get(transaction, self.account_ref(user.id))
            transaction.create(user_ref, user.to_dict())
            if name_ref is not None:
                transaction.set(name_ref, {"user_id": user.id})
            if account is None:
                fresh = Account(user_id=user.id, created_at=format_time(now))
                transaction.create(self.account_ref(user.id), fresh.to_dict())
            return user

        with self._local_locks((user.id,)):
            return self._in_transaction(body)

    def get_user(self: _FirestoreBase, user_id: str) -> User | None:
        data = _data(self, USERS, user_id)
        return None if data is None else User.from_dict(data)

    def find_user_by_username(self: _FirestoreBase, username: str) -> User | None:
        owner = _data(self, USERNAMES, username.lower())
        if owner is None:
            return None
        return FirestorePurchases.get_user(self, str(owner["user_id"]))

    def set_customer_id(self: _FirestoreBase, user_id: str, customer_id: str) -> str:
        ref = _doc(self, USERS, user_id)

        def body(transaction: firestore.Transaction) -> str:
            data = _get(transaction, ref)
            if data is None:
                raise PurchaseNotFound(f"no user {user_id}")
            if data.get("stripe_customer_id"):
                return str(data["stripe_customer_id"])
            transaction.update(ref, {"stripe_customer_id": customer_id})
            return customer_id

        with self._local_locks((user_id,)):
            return self._in_transaction(body)

    def start_purchase(
        self: _FirestoreBase, purchase: Purchase, limits: PurchaseLimits | None, now: datetime
    ) -> Purchase:
        def body(transaction: firestore.Transaction) -> Purchase:
            return start(_FirestoreStart(self, transaction, purchase), purchase, limits, now)

        with self._local_locks((purchase.buyer_id,)):
            return self._in_transaction(body)

    def get_purchase(self: _FirestoreBase, purchase_id: str) -> Purchase | None:
        data = _data(self, PURCHASES, purchase_id)
        return None if data is None else Purchase.from_dict(data)

    def find_purchase(
        self: _FirestoreBase, *, session_id: str | None = None, payment_intent_id: str | None = None
    ) -> Purchase | None:
        field, value = (
            ("session_id", session_id)
            if session_id is not None
            else ("payment_intent_id", payment_intent_id)
        )
        if value is None:
            return None
        query = self.db.collection(PURCHASES).where(filter=FieldFilter(field, "==", value)).limit(1)
        snaps = self._fetch(query)
        return Purchase.from_dict(snaps[0].to_dict()) if snaps else None

    def update_purchase(
        self: _FirestoreBase, purchase_id: str, change: Callable[[Purchase], Purchase | None]
    ) -> Purchase:
        def body(transaction: firestore.Transaction) -> Purchase:
            work = _PurchaseWork(self, transaction)
            return rules.update_purchase(work, purchase_id, change)

        with self._local_locks((purchase_id,)):
            return self._in_transaction(body)

    def apply_for_purchase(
        self: _FirestoreBase,
        purchase_id: str,
        user_ids: tuple[str, ...],
        build: Callable[[Purchase], Operation | None],
        mark: Callable[[Purchase, JournalTransaction | None], Purchase | None],
        now: datetime,
    ) -> tuple[JournalTransaction | None, Purchase]:
        def body(
            transaction: firestore.Transaction,
        ) -> tuple[JournalTransaction | None, Purchase]:
            work = _PurchaseWork(self, transaction)
            return rules.apply_for_purchase(work, purchase_id, build, mark, now)

        with self._local_locks((*user_ids, purchase_id)):
            return self._in_transaction(body)

    def paid_event(self: _FirestoreBase, event: rules.PaidEvent, now: datetime) -> rules.PaidResult:
        locator = event.locator

        def body(transaction: firestore.Transaction) -> rules.PaidResult:
            return rules.apply_paid_event(_PurchaseWork(self, transaction), event, now)

        with self._local_locks((locator.user_id, locator.purchase_id)):
            return self._in_transaction(body)

    def iter_purchases(self: _FirestoreBase) -> Iterator[Purchase]:
        return (Purchase.from_dict(data) for data in self._pages(PURCHASES))

    def event_processed(self: _FirestoreBase, event_id: str) -> bool:
        return FirestorePurchases.event_outcome(self, event_id) is not None

    def event_outcome(self: _FirestoreBase, event_id: str) -> str | None:
        data = _data(self, EVENTS, event_id)
        return None if data is None else str(data.get("outcome", ""))

    def record_event(
        self: _FirestoreBase, event_id: str, event_type: str, outcome: str, now: datetime
    ) -> None:
        record = rules.event_record(event_id, event_type, outcome, now)
        rules.record_event(_EventCreate(self), record)

    def add_alert(self: _FirestoreBase, alert: SecurityAlert) -> None:
        self._call(lambda: _doc(self, ALERTS, alert.id).create(alert.to_dict()))

    def get_setting(self: _FirestoreBase, name: str) -> dict[str, Any] | None:
        data = _data(self, SETTINGS, name)
        return None if data is None else dict(data)

    def put_setting(self: _FirestoreBase, name: str, value: dict[str, Any]) -> None:
        self._call(lambda: _doc(self, SETTINGS, name).set(value))

    def update_setting(
        self: _FirestoreBase,
        name: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        ref = _doc(self, SETTINGS, name)

        def body(transaction: firestore.Transaction) -> dict[str, Any] | None:
            kept = _get(transaction, ref)
            changed = change(None if kept is None else dict(kept))
            if changed is None:
                return kept
            transaction.set(ref, changed)
            return changed

        return self._in_transaction(body)
