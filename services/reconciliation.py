"""Reconcile the journal, the accounts, the purchases and the payment provider.

``reconcile`` streams every journal transaction once, then every account, then
every purchase, then (optionally) the provider's payment intents of the last
``days`` days, and reports each disagreement as a ``Difference``:

1. ``transactions_balance``: every journal transaction's entries sum to zero,
   and every entry names a known account.
2. ``account_balances``: every account's balance equals the sum of its entries
   (and the ``balance_after`` of its entry with the highest ``seq``); its debt
   equals that entry's ``debt_after``; its ``seq`` equals its number of entries.
   Entries of blind credits (Firestore: credits that did not read the balance)
   store no ``seq`` or ``balance_after``; with them, what they added after the
   last stored ``balance_after`` must lie between none and all of them.
3. ``non_negative``: no account, and no entry's ``balance_after`` or
   ``debt_after``, is below zero.
4. ``conservation``: user balances plus the system accounts' totals make zero;
   each system total from ``store.system_balance`` equals the streamed one.
5. ``purchase_credits``: a ``paid`` purchase has exactly one ``purchase``
   journal transaction with ``refs["purchase_id"]`` naming it, for its tokens,
   and ``credit_txn_id`` names it; no other purchase has one; no credit lacks
   its purchase record.
6. ``clawbacks``: for each purchase, the tokens its ``refund``, ``dispute``,
   their reversals and ``clawback_hop`` transactions took (balance taken plus
   debt recorded, minus tokens given back; a hop takes from a recipient what it
   takes off the buyer's debt) equal ``refunded_tokens + disputed_tokens``. This
   needs no provider and always runs.
7. ``provider_payments`` (skipped when ``payments`` is None): every succeeded
   payment intent has a purchase that is ``paid`` and credited for the amount
   received, or is in ``needs_review``; every ``paid`` purchase created in the
   window has its payment intent among the succeeded ones.
8. ``provider_refunds`` (skipped when ``payments`` is None): every refund and
   dispute the provider made in the window names a purchase's payment intent,
   and each purchase created in the window (whose refunds and disputes all fall
   in it) has the provider's amounts: ``refunded_amount`` is what its pending,
   requires_action and succeeded refunds add up to, ``dispute_amount`` what
   its disputes that take tokens (``services/payments/disputes.py``) add up to.
   With check 6 that is three ways: the provider, the purchase, the journal.

Memory does not grow with the number of journal entries or transactions: the
journal is read page by page and only these are kept: a few integers per user
account, one small record per purchase credit (so per purchase), the clawback
entries (a handful per refunded or disputed purchase), the first ``max_kept``
differences and, with the provider check, a small record per purchase and the
ids of the window's succeeded payment intents. So memory grows with the number
of accounts and purchases, not with the ledger's history.

Run it on a quiet ledger, or expect false differences: the journal, the
accounts and the purchases are read one after another, not as one snapshot,
so an operation committed during the run can show up in one and not the other.

One module, over 400 lines, on purpose: the eight checks share one streaming pass
and its running totals (``_Reconciler``); split apart, each would read the journal
again or pass those totals between modules.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from services.ledger.model import (
    Account,
    Entry,
    JournalTransaction,
    SystemAccount,
    TxnType,
    format_time,
    user_account,
)
from services.payments import disputes, refund_records
from services.payments.model import Purchase, PurchaseState
from services.payments.port import PaymentsGateway
from services.store.port import Store

T = TypeVar("T")
MAX_KEPT = 1000
PROGRESS_EVERY = 10_000
CLAWBACK_TYPES = frozenset(
    {
        TxnType.REFUND,
        TxnType.DISPUTE,
        TxnType.DISPUTE_REVERSAL,
        TxnType.REFUND_REVERSAL,
        # A hop takes from a recipient what it takes off the buyer's debt: zero in all.
        TxnType.CLAWBACK_HOP,
    }
)
SYSTEM_ACCOUNTS = frozenset(str(account) for account in SystemAccount)
# A paid purchase's payment intent may be created just before the purchase record.
WINDOW_MARGIN = timedelta(hours=1)

# progress(stage, items done so far, stage finished)
Progress = Callable[[str, int, bool], None]


class Check(StrEnum):
    TRANSACTIONS = "transactions_balance"
    BALANCES = "account_balances"
    NON_NEGATIVE = "non_negative"
    CONSERVATION = "conservation"
    CREDITS = "purchase_credits"
    CLAWBACKS = "clawbacks"
    PROVIDER = "provider_payments"
    PROVIDER_REFUNDS = "provider_refunds"


@dataclass(frozen=True)
class Difference:
    kind: str
    subject: str
    detail: str


@dataclass
class CheckCount:
    checked: int = 0
    differences: int = 0


@dataclass
class ReconcileReport:
    counts: dict[Check, CheckCount] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)  # the first max_kept
    skipped: list[Check] = field(default_factory=list)
    transactions: int = 0
    entries: int = 0
    max_kept: int = MAX_KEPT

    @property
    def total_differences(self) -> int:
        return sum(count.differences for count in self.counts.values())

    @property
    def ok(self) -> bool:
        return self.total_differences == 0

    @property
    def truncated(self) -> bool:
        return self.total_differences > len(self.differences)

    def count(self, check: Check) -> CheckCount:
        return self.counts.setdefault(check, CheckCount())

    def add(self, check: Check, kind: str, subject: str, detail: str) -> None:
        self.count(check).differences += 1
        if len(self.differences) < self.max_kept:
            self.differences.append(Difference(kind, subject, detail))

    def write_csv(self, path: Path | str) -> int:
        """Write the kept differences (kind, subject, detail); returns how many."""
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("kind", "subject", "detail"))
            writer.writerows((d.kind, d.subject, d.detail) for d in self.differences)
        return len(self.differences)


class _UserTotals:
    """What the journal says about one user account."""

    __slots__ = ("balance_after", "blind", "blind_total", "count", "debt_after", "max_seq", "total")

    def __init__(self) -> None:
        self.total = 0
        self.count = 0
        self.max_seq = 0
        self.balance_after = 0
        self.debt_after = 0
        self.blind = 0  # entries of blind credits, which store no seq
        self.blind_total = 0

    def add(self, entry: Entry) -> None:
        self.total += entry.amount
        self.count += 1
        if entry.seq is None:
            self.blind += 1
            self.blind_total += entry.amount
            return
        seq = entry.seq
        if seq >= self.max_seq:
            self.max_seq = seq
            self.balance_after = entry.balance_after or 0
            self.debt_after = entry.debt_after or 0


class _Credit:
    __slots__ = ("amount", "count", "txn_id")

    def __init__(self, txn_id: str, amount: int) -> None:
        self.txn_id = txn_id
        self.amount = amount
        self.count = 1


@dataclass(frozen=True, slots=True)
class _ClawbackEntry:
    txn_id: str
    user_id: str
    seq: int | None  # None: a blind credit (Firestore), which leaves the debt as it was
    amount: int
    debt_after: int


@dataclass(frozen=True, slots=True)
class _PurchaseFacts:
    state: PurchaseState
    amount: int
    currency: str
    credited: bool
    payment_intent_id: str | None
    created_at: str
    refunded_amount: int = 0
    dispute_amount: int = 0


def _ticking(items: Iterable[T], stage: str, progress: Progress | None) -> Iterator[T]:
    """Yield ``items``, telling ``progress`` every PROGRESS_EVERY items and at the end."""
    done = 0
    for item in items:
        yield item
        done += 1
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(stage, done, False)
    if progress is not None:
        progress(stage, done, True)


def _user_amount(txn: JournalTransaction) -> int:
    return sum(e.amount for e in txn.entries if e.user_id is not None)


class _Reconciler:
    def __init__(self, store: Store, report: ReconcileReport, progress: Progress | None) -> None:
        self.store = store
        self.report = report
        self.progress = progress
        self.users: dict[str, _UserTotals] = {}
        self.system: dict[str, int] = {}
        self.credits: dict[str, _Credit] = {}
        self.clawbacks: dict[str, list[_ClawbackEntry]] = {}
        self.user_balances = 0

    def differ(self, check: Check, kind: str, subject: str, detail: str) -> None:
        self.report.add(check, kind, subject, detail)

    # -- 1. the journal ----------------------------------------------------------

    def scan_journal(self) -> None:
        transactions = _ticking(self.store.iter_transactions(), "transactions", self.progress)
        for txn in transactions:
            self.report.transactions += 1
            self.report.entries += len(txn.entries)
            self.check_transaction(txn)

    def check_transaction(self, txn: JournalTransaction) -> None:
        self.report.count(Check.TRANSACTIONS).checked += 1
        total = 0
        for entry in txn.entries:
            total += entry.amount
            if entry.user_id is None:
                self.add_system_entry(entry)
            else:
                self.add_user_entry(entry)
        if total != 0:
            detail = f"{txn.type} transaction's {len(txn.entries)} entries sum to {total}, not 0"
            self.differ(Check.TRANSACTIONS, "unbalanced_transaction", txn.id, detail)
        if txn.type is TxnType.PURCHASE:
            self.add_credit(txn)
        elif txn.type in CLAWBACK_TYPES:
            self.add_clawback(txn)

    def add_system_entry(self, entry: Entry) -> None:
        if entry.account not in SYSTEM_ACCOUNTS:
            detail = (
                f"entry {entry.id} is on {entry.account!r}, neither a user nor a system account"
            )
            self.differ(Check.TRANSACTIONS, "unknown_account", entry.txn_id, detail)
        self.system[entry.account] = self.system.get(entry.account, 0) + entry.amount

    def add_user_entry(self, entry: Entry) -> None:
        user_id = str(entry.user_id)
        if entry.account != user_account(user_id):
            detail = f"entry {entry.id} of user {user_id} is on account {entry.account!r}"
            self.differ(Check.TRANSACTIONS, "unknown_account", entry.txn_id, detail)
        self.users.setdefault(user_id, _UserTotals()).add(entry)
        self.report.count(Check.NON_NEGATIVE).checked += 1
        for name, value in (
            ("balance_after", entry.balance_after),
            ("debt_after", entry.debt_after),
        ):
            if value is not None and value < 0:
                kind = f"negative_{name}"
                self.differ(Check.NON_NEGATIVE, kind, entry.id, f"user {user_id}: {name} {value}")

    def add_credit(self, txn: JournalTransaction) -> None:
        purchase_id = txn.refs.get("purchase_id")
        if not purchase_id:
            detail = "a purchase credit that names no purchase (refs has no purchase_id)"
            self.differ(Check.CREDITS, "credit_without_purchase", txn.id, detail)
            return
        credit = self.credits.get(purchase_id)
        if credit is None:
            self.credits[purchase_id] = _Credit(txn.id, _user_amount(txn))
        else:
            credit.count += 1

    def add_clawback(self, txn: JournalTransaction) -> None:
        purchase_id = txn.refs.get("purchase_id")
        if not purchase_id:
            return  # an operator's clawback, tied to no purchase
        found = self.clawbacks.setdefault(purchase_id, [])
        for e in txn.entries:
            if e.user_id is not None:
                debt = e.debt_after or 0
                found.append(_ClawbackEntry(txn.id, e.user_id, e.seq, e.amount, debt))

    # -- 2, 3 and 4. accounts and conservation ----------------------------------------

    def scan_accounts(self) -> None:
        for account in _ticking(self.store.iter_accounts(), "accounts", self.progress):
            totals = self.users.pop(account.user_id, None) or _UserTotals()
            self.check_account(account, totals)
            self.user_balances += account.balance
        for user_id, totals in self.users.items():
            self.report.count(Check.BALANCES).checked += 1
            detail = f"{totals.count} entries summing to {totals.total}, but no account"
            self.differ(Check.BALANCES, "entries_without_account", user_id, detail)
        self.users.clear()

    def check_account(self, account: Account, totals: _UserTotals) -> None:
        self.report.count(Check.BALANCES).checked += 1
        user = account.user_id
        if account.balance != totals.total:
            detail = (
                f"balance {account.balance}; its entries ({totals.count}) sum to {totals.total};"
                f" last balance_after {totals.balance_after}"
            )
            self.differ(Check.BALANCES, "balance_mismatch", user, detail)
        if not self.balance_after_fits(totals):
            detail = f"entries sum to {totals.total}, last balance_after {totals.balance_after}"
            self.differ(Check.BALANCES, "balance_after_mismatch", user, detail)
        if account.debt != totals.debt_after:
            detail = f"debt {account.debt}, last entry's debt_after {totals.debt_after}"
            self.differ(Check.BALANCES, "debt_mismatch", user, detail)
        seqs_fit = totals.count - totals.blind <= totals.max_seq <= totals.count
        if not (account.seq == totals.count and seqs_fit):
            detail = f"seq {account.seq}; entries: {totals.count}; highest seq {totals.max_seq}"
            self.differ(Check.BALANCES, "seq_mismatch", user, detail)
        self.check_non_negative(account)

    @staticmethod
    def balance_after_fits(totals: _UserTotals) -> bool:
        """The last stored balance_after plus the blind credits made after it (some,
        all or none of them: they store no position) make the entries' sum."""
        if not totals.blind:
            return totals.total == totals.balance_after
        added_later = totals.total - totals.balance_after
        return 0 <= added_later <= totals.blind_total

    def check_non_negative(self, account: Account) -> None:
        self.report.count(Check.NON_NEGATIVE).checked += 1
        if account.balance < 0:
            detail = f"balance {account.balance}"
            self.differ(Check.NON_NEGATIVE, "negative_balance", account.user_id, detail)
        if account.debt < 0:
            detail = f"debt {account.debt}"
            self.differ(Check.NON_NEGATIVE, "negative_debt", account.user_id, detail)

    def check_conservation(self) -> None:
        count = self.report.count(Check.CONSERVATION)
        stored = {str(a): self.store.system_balance(a) for a in SystemAccount}
        for name, total in stored.items():
            count.checked += 1
            streamed = self.system.get(name, 0)
            if total != streamed:
                detail = f"the store totals {total}, its journal entries sum to {streamed}"
                self.differ(Check.CONSERVATION, "system_total_mismatch", name, detail)
        count.checked += 1
        system_total = sum(stored.values())
        grand = self.user_balances + system_total
        if grand != 0:
            detail = (
                f"user balances {self.user_balances} + system accounts {system_total}"
                f" = {grand}, not 0"
            )
            self.differ(Check.CONSERVATION, "conservation", "ledger", detail)

    # -- 5 and 6. purchases --------------------------------------------------------

    def scan_purchases(self, facts: dict[str, _PurchaseFacts] | None) -> None:
        for purchase in _ticking(self.store.iter_purchases(), "purchases", self.progress):
            credit = self.credits.pop(purchase.id, None)
            self.check_credit(purchase, credit)
            self.check_clawbacks(purchase, self.clawbacks.pop(purchase.id, []))
            if facts is not None:
                facts[purchase.id] = _facts(purchase, credit is not None)
        self.report_orphans()

    def check_credit(self, purchase: Purchase, credit: _Credit | None) -> None:
        self.report.count(Check.CREDITS).checked += 1
        pid, state = purchase.id, purchase.state
        if state is PurchaseState.PAID:
            self.check_paid_credit(purchase, credit)
        elif credit is not None and state is PurchaseState.NEEDS_REVIEW:
            detail = f"in needs_review, but credited {credit.amount} tokens by {credit.txn_id}"
            self.differ(Check.CREDITS, "credited_in_review", pid, detail)
        elif credit is not None:
            detail = f"state {state}, but credited {credit.amount} tokens by {credit.txn_id}"
            self.differ(Check.CREDITS, "credit_not_paid", pid, detail)

    def check_paid_credit(self, purchase: Purchase, credit: _Credit | None) -> None:
        pid = purchase.id
        if credit is None:
            detail = f"paid for {purchase.tokens} tokens, but no purchase credit names it"
            self.differ(Check.CREDITS, "missing_credit", pid, detail)
        elif credit.count != 1:
            detail = f"{credit.count} purchase credits name it (first {credit.txn_id})"
            self.differ(Check.CREDITS, "duplicate_credit", pid, detail)
        elif credit.amount != purchase.tokens:
            detail = f"credit {credit.txn_id} is {credit.amount} tokens, the pack {purchase.tokens}"
            self.differ(Check.CREDITS, "credit_amount_mismatch", pid, detail)
        elif purchase.credit_txn_id != credit.txn_id:
            detail = f"credit_txn_id is {purchase.credit_txn_id}, the credit is {credit.txn_id}"
            self.differ(Check.CREDITS, "credit_txn_mismatch", pid, detail)

    def check_clawbacks(self, purchase: Purchase, found: list[_ClawbackEntry]) -> None:
        expected = purchase.refunded_tokens + purchase.disputed_tokens
        if not (found or expected or purchase.refunded_amount > 0 or purchase.dispute_status):
            return
        self.report.count(Check.CLAWBACKS).checked += 1
        taken = sum(self.taken(entry) for entry in found)
        if taken != expected:
            detail = (
                f"refunded_tokens {purchase.refunded_tokens} + disputed_tokens "
                f"{purchase.disputed_tokens} = {expected}, but its {len(found)} refund/dispute "
                f"entries took {taken} (balance taken plus debt recorded)"
            )
            self.differ(Check.CLAWBACKS, "clawback_mismatch", purchase.id, detail)

    def taken(self, entry: _ClawbackEntry) -> int:
        """Tokens an entry took from the user: balance removed plus debt added."""
        return -entry.amount + entry.debt_after - self.debt_before(entry)

    def debt_before(self, entry: _ClawbackEntry) -> int:
        if entry.seq is None:
            return entry.debt_after  # a credit never changes the debt
        if entry.seq <= 1:
            return 0
        previous = self.store.list_entries(entry.user_id, 1, entry.seq, None)
        return (previous[0].debt_after or 0) if previous else 0

    def report_orphans(self) -> None:
        for purchase_id, credit in self.credits.items():
            self.report.count(Check.CREDITS).checked += 1
            detail = f"credit {credit.txn_id} ({credit.amount} tokens) has no purchase record"
            self.differ(Check.CREDITS, "credit_without_purchase", purchase_id, detail)
        for purchase_id, found in self.clawbacks.items():
            self.report.count(Check.CLAWBACKS).checked += 1
            txns = ", ".join(sorted({entry.txn_id for entry in found}))
            detail = f"refund/dispute transactions {txns} name no purchase record"
            self.differ(Check.CLAWBACKS, "clawback_without_purchase", purchase_id, detail)
        self.credits.clear()
        self.clawbacks.clear()

    # -- 7. the payment provider ----------------------------------------------------

    def check_provider(
        self, payments: PaymentsGateway, facts: dict[str, _PurchaseFacts], since: datetime
    ) -> None:
        by_intent = {f.payment_intent_id: pid for pid, f in facts.items() if f.payment_intent_id}
        succeeded: set[str] = set()
        intents = payments.list_payments(created_gte=int(since.timestamp()))
        for intent in _ticking(intents, "payments", self.progress):
            if intent.get("status") != "succeeded":
                continue
            intent_id = str(intent.get("id"))
            succeeded.add(intent_id)
            self.report.count(Check.PROVIDER).checked += 1
            metadata: Mapping[str, Any] = intent.get("metadata") or {}
            purchase_id = by_intent.get(intent_id) or str(metadata.get("purchase_id") or "")
            self.check_payment(intent, intent_id, purchase_id, facts.get(purchase_id))
        self.check_paid_purchases(facts, succeeded, format_time(since + WINDOW_MARGIN))

    def check_payment(
        self,
        intent: Mapping[str, Any],
        intent_id: str,
        purchase_id: str,
        fact: _PurchaseFacts | None,
    ) -> None:
        received = f"{intent.get('amount_received')} {intent.get('currency')}"
        if fact is None:
            detail = f"succeeded for {received}, but no purchase has this payment intent"
            self.differ(Check.PROVIDER, "payment_without_purchase", intent_id, detail)
        elif fact.state is PurchaseState.NEEDS_REVIEW:
            return  # an operator decides; never silently dropped
        elif fact.state is not PurchaseState.PAID or not fact.credited:
            credited = "credited" if fact.credited else "not credited"
            detail = f"succeeded for {received}; purchase {purchase_id} is {fact.state}, {credited}"
            self.differ(Check.PROVIDER, "payment_not_credited", intent_id, detail)
        elif (intent.get("amount_received"), str(intent.get("currency") or "").lower()) != (
            fact.amount,
            fact.currency,
        ):
            detail = (
                f"received {received}; purchase {purchase_id} expects {fact.amount} {fact.currency}"
            )
            self.differ(Check.PROVIDER, "payment_amount_mismatch", intent_id, detail)

    def check_paid_purchases(
        self, facts: dict[str, _PurchaseFacts], succeeded: set[str], created_from: str
    ) -> None:
        for purchase_id, fact in facts.items():
            if fact.state is not PurchaseState.PAID or fact.created_at < created_from:
                continue
            if fact.payment_intent_id is None or fact.payment_intent_id in succeeded:
                continue
            self.report.count(Check.PROVIDER).checked += 1
            intent_id = fact.payment_intent_id
            detail = f"paid, but its payment intent {intent_id} is not among the succeeded ones"
            self.differ(Check.PROVIDER, "paid_without_payment", purchase_id, detail)

    # -- 8. the provider's refunds and disputes -----------------------------------------

    def check_refunds(
        self, payments: PaymentsGateway, facts: dict[str, _PurchaseFacts], since: datetime
    ) -> None:
        by_intent = {f.payment_intent_id: pid for pid, f in facts.items() if f.payment_intent_id}
        refunded: dict[str, int] = {}
        disputed: dict[str, int] = {}
        gte = int(since.timestamp())
        for refund in _ticking(payments.list_refunds(created_gte=gte), "refunds", self.progress):
            pid = self.provider_purchase(refund, by_intent, "refund")
            if pid is not None and refund.get("status") in refund_records.ACTIVE:
                refunded[pid] = refunded.get(pid, 0) + int(refund.get("amount") or 0)
        for dispute in _ticking(payments.list_disputes(created_gte=gte), "disputes", self.progress):
            pid = self.provider_purchase(dispute, by_intent, "dispute")
            if pid is not None and disputes.takes({"status": dispute.get("status")}):
                disputed[pid] = disputed.get(pid, 0) + int(dispute.get("amount") or 0)
        created_from = format_time(since + WINDOW_MARGIN)
        for purchase_id, fact in facts.items():
            if fact.payment_intent_id is None or fact.created_at < created_from:
                continue  # refunded or disputed before the window, perhaps
            self.compare_refunds(purchase_id, fact, refunded.get(purchase_id, 0), "refunded")
            self.compare_refunds(purchase_id, fact, disputed.get(purchase_id, 0), "disputed")

    def provider_purchase(
        self, obj: Mapping[str, Any], by_intent: Mapping[str, str], what: str
    ) -> str | None:
        """The purchase a provider's refund or dispute belongs to; a difference if none."""
        intent = obj.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, Mapping) else intent
        purchase_id = by_intent.get(str(intent_id)) if intent_id else None
        if purchase_id is None:
            self.report.count(Check.PROVIDER_REFUNDS).checked += 1
            detail = f"{what} of {obj.get('amount')} for payment intent {intent_id}, no purchase"
            self.differ(
                Check.PROVIDER_REFUNDS, f"{what}_without_purchase", str(obj.get("id")), detail
            )
        return purchase_id

    def compare_refunds(
        self, purchase_id: str, fact: _PurchaseFacts, provider: int, what: str
    ) -> None:
        ours = fact.refunded_amount if what == "refunded" else fact.dispute_amount
        if not (ours or provider):
            return
        self.report.count(Check.PROVIDER_REFUNDS).checked += 1
        if ours != provider:
            detail = f"{what} {ours} here, {provider} at the provider"
            self.differ(Check.PROVIDER_REFUNDS, f"{what}_mismatch", purchase_id, detail)


def _facts(purchase: Purchase, credited: bool) -> _PurchaseFacts:
    return _PurchaseFacts(
        state=purchase.state,
        amount=purchase.amount,
        currency=purchase.currency.lower(),
        credited=credited,
        payment_intent_id=purchase.payment_intent_id,
        created_at=purchase.created_at,
        refunded_amount=purchase.refunded_amount,
        dispute_amount=purchase.dispute_amount,
    )


def reconcile(
    store: Store,
    payments: PaymentsGateway | None,
    now: datetime,
    days: int = 30,
    progress: Progress | None = None,
    *,
    max_kept: int = MAX_KEPT,
) -> ReconcileReport:
    """Check the ledger against itself, the purchases and (unless ``payments`` is None)
    the provider's payment intents created in the ``days`` days before ``now``.

    Raises what the store or the gateway raise (StorageError, PaymentsError).
    """
    report = ReconcileReport(max_kept=max_kept)
    for check in Check:
        report.count(check)
    work = _Reconciler(store, report, progress)
    work.scan_journal()
    work.scan_accounts()
    work.check_conservation()
    facts: dict[str, _PurchaseFacts] | None = None if payments is None else {}
    work.scan_purchases(facts)
    if payments is None or facts is None:
        for check in (Check.PROVIDER, Check.PROVIDER_REFUNDS):
            del report.counts[check]
            report.skipped.append(check)
    else:
        work.check_provider(payments, facts, now - timedelta(days=days))
        work.check_refunds(payments, facts, now - timedelta(days=days))
    return report
