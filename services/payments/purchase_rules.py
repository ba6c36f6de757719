"""Purchase rules as pure functions over a small unit of work, shared by every store.

As the ledger's ``rules.execute``, each function reads first and writes after,
the order Firestore transactions require; an adapter runs it inside ONE store
transaction and supplies only the reads and writes. A paid webhook event
(``apply_paid_event``) is read, checked, credited and recorded in one such
transaction: the unit of work reads everything it may need at once (see
``PaidRead``), and what was read decides whether anything else is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.errors import PurchaseNotFound
from services.faults import BEFORE_EVENT_RECORD, fault_point
from services.ledger.model import Account, JournalTransaction, Operation, format_time
from services.ledger.rules import UnitOfWork, execute
from services.payments.model import FINAL_STATES, Purchase

Change = Callable[[Purchase], Purchase | None]
Build = Callable[[Purchase], Operation | None]
Mark = Callable[[Purchase, JournalTransaction | None], Purchase | None]
# The deferred refund and dispute records a purchase's payment intent may have,
# in the order they are applied (``Clawbacks.apply_deferred``).
DEFERRED_KINDS = ("refund", "dispute_opened", "dispute_closed")


def deferred_name(payment_intent: str, kind: str) -> str:
    """The setting that keeps a refund or dispute that arrived before its payment."""
    return f"deferred:{payment_intent}:{kind}"


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    type: str
    outcome: str
    processed_at: str


def event_record(event_id: str, event_type: str, outcome: str, now: datetime) -> EventRecord:
    return EventRecord(event_id, event_type, outcome, format_time(now))


class PurchaseWork(Protocol):
    """One purchase's reads and writes inside one store transaction."""

    def purchase(self, purchase_id: str) -> Purchase | None: ...

    def save_purchase(self, purchase: Purchase) -> None: ...

    def ledger(self) -> UnitOfWork:
        """The ledger's unit of work in the same transaction."""


class EventWork(Protocol):
    def add_event_once(self, record: EventRecord) -> None:
        """Store the record unless one with its id is stored: the first outcome stays."""


def update_purchase(work: PurchaseWork, purchase_id: str, change: Change) -> Purchase:
    current = work.purchase(purchase_id)
    if current is None:
        raise PurchaseNotFound(f"no purchase {purchase_id}")
    updated = change(current)
    if updated is None or updated == current:
        return current
    work.save_purchase(updated)
    return updated


def apply_for_purchase(
    work: PurchaseWork, purchase_id: str, build: Build, mark: Mark, now: datetime
) -> tuple[JournalTransaction | None, Purchase]:
    """Tokens and the purchase's record of them change together, decided on the stored purchase."""
    current = work.purchase(purchase_id)  # read before execute() starts writing
    if current is None:
        raise PurchaseNotFound(f"no purchase {purchase_id}")
    op = build(current)
    txn = None if op is None else execute(work.ledger(), op, now)
    updated = mark(current, txn)
    if updated is None or updated == current:
        return txn, current
    work.save_purchase(updated)
    return txn, updated


def record_event(work: EventWork, record: EventRecord) -> None:
    work.add_event_once(record)


# -- the paid event --------------------------------------------------------------------


@dataclass(frozen=True)
class PaidLocator:
    """Where a paid event's documents are, from the event's own hints.

    Only a locator: the stored purchase read through it decides, and an
    event whose hints name another purchase or user is not handled here.
    """

    event_id: str
    purchase_id: str
    user_id: str
    payment_intent: str | None  # whose deferred refunds and disputes to read
    # The credit as the hints describe it: names the ledger's documents to read with
    # the rest. The credit applied is built from the stored purchase.
    credit: Operation


@dataclass(frozen=True)
class PaidRead:
    """Everything a paid event may need, read at once."""

    event_outcome: str | None
    failure_open: bool
    purchase: Purchase | None
    user_exists: bool
    account: Account | None
    deferred: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # kind -> record


class PaidWork(PurchaseWork, EventWork, Protocol):
    def read_paid(self, locator: PaidLocator) -> PaidRead: ...

    def resolve_failure(self, event_id: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class PaidEvent:
    """A verified paid event, with the checks and the credit its handler decides on."""

    locator: PaidLocator
    event_type: str
    belongs: Callable[[Purchase], bool]  # the stored purchase is this event's payment's
    problem: Callable[[Purchase], str | None]  # a mismatch that sends it to review
    credit: Callable[[Purchase], Operation]
    mark: Mark


@dataclass(frozen=True)
class PaidResult:
    """``handled`` False: nothing was written, the caller takes the general path.

    ``recorded`` False on a handled event: the credit (if any) is committed, and the
    caller repays debt (``repay``) and applies deferred records (``deferred``)
    before recording the event.
    """

    handled: bool
    duplicate: bool = False
    outcome: str = ""
    purchase: Purchase | None = None
    txn: JournalTransaction | None = None
    recorded: bool = False
    repay: bool = False
    deferred: bool = False


NOT_HANDLED = PaidResult(handled=False)


def _ours(read: PaidRead, event: PaidEvent) -> Purchase | None:
    purchase = read.purchase
    ready = read.user_exists and read.account is not None
    if purchase is None or not ready or purchase.user_id != event.locator.user_id:
        return None
    if not event.belongs(purchase) or event.problem(purchase) is not None:
        return None
    return purchase


def debt_to_repay(read: PaidRead, paid: Purchase) -> bool:
    """A credited purchase whose account owes: the credit repays it, after the commit."""
    in_debt = read.account is not None and read.account.debt > 0
    return paid.credit_txn_id is not None and in_debt


def deferred_to_apply(read: PaidRead, paid: Purchase, locator: PaidLocator) -> bool:
    """Refunds or disputes kept for the payment intent (or an intent whose were not read)."""
    if paid.payment_intent_id is None:
        return False
    return paid.payment_intent_id != locator.payment_intent or any(read.deferred.values())


def apply_paid_event(work: PaidWork, event: PaidEvent, now: datetime) -> PaidResult:
    """Read, check, credit and record a paid event in one transaction.

    Anything out of the ordinary (no such purchase, a mismatch, no account) is
    left to the general path with nothing written; a DomainError from the
    credit propagates, and the transaction writes nothing.
    """
    locator = event.locator
    read = work.read_paid(locator)
    if read.event_outcome is not None:
        return PaidResult(handled=True, duplicate=True, outcome=read.event_outcome)
    purchase = _ours(read, event)
    if purchase is None:
        return NOT_HANDLED
    op = None if purchase.state in FINAL_STATES else event.credit(purchase)
    txn = None if op is None else execute(work.ledger(), op, now)
    marked = event.mark(purchase, txn)
    paid = purchase if marked is None or marked == purchase else marked
    if paid is not purchase:
        work.save_purchase(paid)
    outcome = str(paid.state)
    repay, deferred = debt_to_repay(read, paid), deferred_to_apply(read, paid, locator)
    if repay or deferred:
        return PaidResult(True, False, outcome, paid, txn, repay=repay, deferred=deferred)
    fault_point(BEFORE_EVENT_RECORD)  # a kill here commits nothing
    record_event(work, event_record(locator.event_id, event.event_type, outcome, now))
    if read.failure_open:
        work.resolve_failure(locator.event_id, now)
    return PaidResult(handled=True, outcome=outcome, purchase=paid, txn=txn, recorded=True)
