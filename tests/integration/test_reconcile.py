"""Reconciliation: a small real ledger, the real CLI in a subprocess, real corruptions.

Each corruption is made directly in a copy of the clean SQLite file, with the
journal's append-only triggers dropped first: that is what a corruption is.
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from config.catalog import load_catalog
from services.ledger.model import (
    TxnType,
    format_time,
    utc_now,
)
from services.payments.clawbacks import Clawbacks
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, PurchaseState, User
from services.payments.port import PaymentsGateway
from services.reconciliation import Check, ReconcileReport, reconcile
from services.security import SecurityService
from services.store.firestore import FirestoreStore
from services.store.port import Store
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from tests.support.cli import CliResult, tokens_in_process
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer, tokens_cli

ROOT = Path(__file__).resolve().parents[2]
PACKS = {"starter": (50, 499), "popular": (110, 999), "pro": (250, 1999)}


@dataclass(frozen=True)
class Built:
    """What the tests corrupt and look for, by name."""

    purchases: dict[str, Purchase]  # by buyer
    pending_id: str


# -- building a ledger the way the app does -----------------------------------------------


def start(store: Store, user_id: str, pack_id: str, now: datetime, n: int = 1) -> Purchase:
    store.ensure_user(User(id=user_id, created_at=format_time(now)), now)
    tokens, amount = PACKS[pack_id]
    purchase = Purchase(
        id=f"pur_{user_id}_{pack_id}_{n}",
        buyer_id=user_id,
        user_id=user_id,
        pack_id=pack_id,
        tokens=tokens,
        amount=amount,
        currency="usd",
        state=PurchaseState.PENDING,
        created_at=format_time(now),
        updated_at=format_time(now),
        session_id=f"cs_test_{user_id}_{pack_id}_{n}",
    )
    return store.start_purchase(purchase, None, now)


def pay(store: Store, purchase: Purchase, now: datetime) -> Purchase:
    """Credit and mark paid through the app's own fulfilment, as a paid event does."""
    fulfilment = Fulfilment(store, TokenLedger(store), load_catalog(None), SecurityService(store))
    return fulfilment.credit(purchase, f"pi_{purchase.id}")


def record(store: Store, purchase_id: str, **changes: Any) -> None:
    now = format_time(utc_now())
    store.update_purchase(purchase_id, lambda p: p.with_changes(now, **changes))


def refund_and_dispute(store: Store, dave: Purchase, erin: Purchase) -> None:
    """Through the app's own clawback code, as charge.refunded and dispute events do."""
    clawbacks = Clawbacks(store, TokenLedger(store), SecurityService(store), utc_now)
    half = {"object": "charge", "id": "ch_dave", "payment_intent": dave.payment_intent_id}
    assert clawbacks.refunded({**half, "amount_refunded": 249}) == "refund_clawed_back"
    dispute = {"object": "dispute", "id": "dp_erin", "payment_intent": erin.payment_intent_id}
    assert clawbacks.dispute_opened({**dispute, "amount": 1999}) == "dispute_clawed_back"
    assert clawbacks.dispute_closed({**dispute, "status": "won"}) == "dispute_won"


def build(store: Store) -> Built:
    now = utc_now()
    ledger = TokenLedger(store)
    bought = {
        user: pay(store, start(store, user, pack, now), now)
        for user, pack in (("alice", "popular"), ("bob", "starter"), ("dave", "starter"))
    }
    bought["erin"] = pay(store, start(store, "erin", "pro", now), now)
    pending = start(store, "carol", "pro", now)
    ledger.spend("alice", 30, key="alice-spend-1")
    ledger.transfer("alice", "bob", 20, key="alice-to-bob-1")
    ledger.credit("carol", 5, key="grant-carol-1", type=TxnType.GRANT)
    # dave spends most, then half is refunded: 24 tokens, 10 taken and 14 recorded as debt;
    # erin's payment is disputed (250 taken back), then the dispute is won (given back).
    ledger.spend("dave", 40, key="dave-spend-1")
    refund_and_dispute(store, bought["dave"], bought["erin"])
    # dave's next purchase repays his debt first.
    bought["dave2"] = pay(store, start(store, "dave", "starter", now, 2), now)
    return Built({u: store.get_purchase(p.id) or p for u, p in bought.items()}, pending.id)


# -- the clean ledger, and copies to corrupt -----------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    path = tmp_path_factory.mktemp("reconcile") / "clean.db"
    store = SqliteStore(str(path))
    built = build(store)
    store.close()
    return path, built


def copy_of(clean_db: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tokens.db"
    with sqlite3.connect(clean_db) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def corrupt(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for name in ("entries_append_only", "entries_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name in ("transactions_append_only", "transactions_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql, args in statements:
            assert conn.execute(sql, args).rowcount >= 1, sql
    finally:
        conn.close()


def run_cli(db: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a new process; the sandbox's database is ``tmp_path/sandbox.db``."""
    env = {
        **os.environ,
        "STORE_URL": f"sqlite:///{db}",
        "SANDBOX_DB_PATH": str(tmp_path / "sandbox.db"),
    }
    env.pop("TOKEN_STORE_NO_MODULE_APP", None)
    env.pop("STRIPE_SECRET_KEY", None)
    return tokens_cli(env, "reconcile", *args)


def run_in_process(db: Path, tmp_path: Path, *args: str) -> CliResult:
    """The same command through Flask's test CLI runner, on an app built from these settings."""
    config = {"STORE_URL": f"sqlite:///{db}", "SANDBOX_DB_PATH": str(tmp_path / "sandbox.db")}
    return tokens_in_process(config, "reconcile", *args)


def names(output: str, kind: str, subject: str) -> bool:
    return any(kind in line and subject in line for line in output.splitlines())


# -- the CLI ---------------------------------------------------------------------------


def test_a_clean_ledger_reconciles(clean: tuple[Path, Built], tmp_path: Path) -> None:
    done = run_cli(copy_of(clean[0], tmp_path), tmp_path, "--no-provider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: everything reconciles" in done.stdout
    for check in Check:
        assert check in done.stdout
    summary = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[2:10]}
    assert summary["transactions_balance"] == ["13", "0"]
    assert summary["account_balances"] == ["5", "0"]
    assert summary["purchase_credits"] == ["6", "0"]
    assert summary["clawbacks"] == ["2", "0"]
    assert summary["provider_payments"] == ["skipped", "-"]
    assert summary["provider_refunds"] == ["skipped", "-"]
    assert "transactions: 13 done" in done.stderr  # the progress counter


def test_a_changed_balance_is_found(clean: tuple[Path, Built], tmp_path: Path) -> None:
    db = copy_of(clean[0], tmp_path)
    corrupt(db, ("UPDATE accounts SET balance = balance + 5 WHERE user_id = ?", ("alice",)))
    done = run_in_process(db, tmp_path, "--no-provider")
    assert done.returncode == 1, done.stdout + done.stderr
    assert names(done.stdout, "balance_mismatch", "alice")
    assert names(done.stdout, "conservation", "ledger")
    assert "DIFFERENCES: 2 found" in done.stdout


def test_a_changed_entry_is_found(clean: tuple[Path, Built], tmp_path: Path) -> None:
    db = copy_of(clean[0], tmp_path)
    credit = clean[1].purchases["bob"].credit_txn_id
    assert credit is not None
    sql = "UPDATE entries SET amount = amount + 7 WHERE txn_id = ? AND user_id IS NOT NULL"
    corrupt(db, (sql, (credit,)))
    done = run_in_process(db, tmp_path, "--no-provider")
    assert done.returncode == 1, done.stdout + done.stderr
    assert names(done.stdout, "unbalanced_transaction", credit)
    assert names(done.stdout, "balance_mismatch", "bob")
    assert names(done.stdout, "credit_amount_mismatch", clean[1].purchases["bob"].id)


def test_a_deleted_credit_is_found_and_written_to_csv(
    clean: tuple[Path, Built], tmp_path: Path
) -> None:
    db = copy_of(clean[0], tmp_path)
    purchase = clean[1].purchases["bob"]
    corrupt(
        db,
        ("DELETE FROM entries WHERE txn_id = ?", (purchase.credit_txn_id,)),
        ("DELETE FROM journal_transactions WHERE id = ?", (purchase.credit_txn_id,)),
    )
    report = tmp_path / "differences.csv"
    done = run_in_process(db, tmp_path, "--no-provider", "--csv", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    assert names(done.stdout, "missing_credit", purchase.id)
    assert names(done.stdout, "balance_mismatch", "bob")
    with report.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = {(row["kind"], row["subject"]) for row in rows}
    assert {
        ("missing_credit", purchase.id),
        ("balance_mismatch", "bob"),
        ("seq_mismatch", "bob"),
        ("conservation", "ledger"),
    } <= found
    assert all(row["detail"] for row in rows)
    assert f"wrote {len(rows)} differences to {report}" in done.stdout


# -- the function, with a provider ---------------------------------------------------------


class FakeProvider:
    """Lists payment intents, refunds and disputes as Stripe shapes them; nothing else."""

    mode = "fake"

    def __init__(
        self,
        intents: list[dict[str, Any]],
        refunds: list[dict[str, Any]],
        disputes: list[dict[str, Any]],
    ) -> None:
        self.intents, self.refunds, self.disputes = intents, refunds, disputes
        self.asked: list[int] = []

    def list_payments(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        self.asked.append(created_gte)
        return iter(self.intents)

    def list_refunds(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        assert created_gte == self.asked[-1]
        return iter(self.refunds)

    def list_disputes(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        assert created_gte == self.asked[-1]
        return iter(self.disputes)


def refund(purchase: Purchase, amount: int, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": f"re_{purchase.id}_{status}",
        "object": "refund",
        "payment_intent": purchase.payment_intent_id,
        "amount": amount,
        "status": status,
    }


def dispute(purchase: Purchase, amount: int, status: str) -> dict[str, Any]:
    return {
        "id": f"dp_{purchase.id}_{status}",
        "object": "dispute",
        "payment_intent": purchase.payment_intent_id,
        "amount": amount,
        "status": status,
    }


def after_payment(built: Built) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the provider shows of ``refund_and_dispute``: dave's refund, erin's won dispute."""
    purchases = built.purchases
    return [refund(purchases["dave"], 249)], [dispute(purchases["erin"], 1999, "won")]


def intent(purchase: Purchase, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": purchase.payment_intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "amount_received": purchase.amount,
        "currency": purchase.currency,
        "created": int(utc_now().timestamp()),
        "metadata": {},
    }
    return {**values, **changes}


def check_with(
    store: Store,
    intents: list[dict[str, Any]],
    refunds: list[dict[str, Any]] | None = None,
    disputes: list[dict[str, Any]] | None = None,
    built: Built | None = None,
) -> ReconcileReport:
    found = after_payment(built) if built is not None else ([], [])
    provider = FakeProvider(
        intents,
        found[0] if refunds is None else refunds,
        found[1] if disputes is None else disputes,
    )
    report = reconcile(store, cast(PaymentsGateway, provider), utc_now(), days=7)
    assert len(provider.asked) == 1 and provider.asked[0] <= int(utc_now().timestamp()) - 7 * 86400
    return report


def kinds(report: ReconcileReport) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in report.differences}


@pytest.fixture
def sqlite_store(clean: tuple[Path, Built], tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(str(copy_of(clean[0], tmp_path)))
    yield store
    store.close()


def test_every_payment_matches_a_credited_purchase(
    sqlite_store: SqliteStore, clean: tuple[Path, Built]
) -> None:
    purchases = clean[1].purchases
    report = check_with(sqlite_store, [intent(p) for p in purchases.values()], built=clean[1])
    assert report.ok, report.differences
    assert report.count(Check.PROVIDER).checked == 5
    assert report.count(Check.PROVIDER_REFUNDS).checked == 1  # dave's refund
    assert report.entries == 26 and report.transactions == 13


def test_provider_differences_are_named(
    sqlite_store: SqliteStore, clean: tuple[Path, Built]
) -> None:
    purchases = clean[1].purchases
    pending = sqlite_store.get_purchase(clean[1].pending_id)
    assert pending is not None
    intents = [
        intent(purchases["alice"]),
        intent(purchases["bob"], amount_received=1),  # paid less than the pack
        intent(purchases["dave"], status="requires_payment_method"),  # not a payment
        # carol paid, found by metadata, but her purchase is still pending
        intent(pending, id="pi_carol", metadata={"purchase_id": pending.id}),
        intent(pending, id="pi_stranger", metadata={}),
    ]  # erin's and dave's second payments are missing: credited without one
    report = check_with(sqlite_store, intents, built=clean[1])
    assert kinds(report) == {
        ("payment_amount_mismatch", str(purchases["bob"].payment_intent_id)),
        ("payment_not_credited", "pi_carol"),
        ("payment_without_purchase", "pi_stranger"),
        ("paid_without_payment", purchases["dave"].id),
        ("paid_without_payment", purchases["dave2"].id),
        ("paid_without_payment", purchases["erin"].id),
    }
    assert report.count(Check.PROVIDER).differences == 6
    assert not report.ok


def test_refunds_and_disputes_agree_three_ways(
    sqlite_store: SqliteStore, clean: tuple[Path, Built]
) -> None:
    """The provider's refunds and disputes, the purchases' records, the journal."""
    purchases = clean[1].purchases
    intents = [intent(p) for p in purchases.values()]
    dave, alice = purchases["dave"], purchases["alice"]
    stranger = {**refund(dave, 100), "id": "re_stranger", "payment_intent": "pi_stranger"}
    refunds = [refund(dave, 249, "failed"), stranger]  # the app missed that it failed
    disputes = [
        dispute(purchases["erin"], 1999, "won"),
        dispute(alice, 999, "needs_response"),  # a chargeback the app never heard of
        dispute(alice, 999, "warning_needs_response"),  # an inquiry: nothing to take
    ]
    report = check_with(sqlite_store, intents, refunds, disputes)
    assert kinds(report) == {
        ("refunded_mismatch", dave.id),
        ("disputed_mismatch", alice.id),
        ("refund_without_purchase", "re_stranger"),
    }
    assert report.count(Check.PROVIDER_REFUNDS).differences == 3
    assert all(d.detail for d in report.differences)


def test_clawbacks_must_match_the_purchase(
    sqlite_store: SqliteStore, clean: tuple[Path, Built]
) -> None:
    dave = clean[1].purchases["dave"]
    assert dave.refunded_tokens == 24  # the journal took 10 tokens and recorded 14 as debt
    record(sqlite_store, dave.id, refunded_tokens=25)
    report = reconcile(sqlite_store, None, utc_now())
    assert kinds(report) == {("clawback_mismatch", dave.id)}
    assert "took 24" in report.differences[0].detail
    assert report.skipped == [Check.PROVIDER, Check.PROVIDER_REFUNDS]


def test_a_credit_for_an_unpaid_purchase_is_found(sqlite_store: SqliteStore) -> None:
    now = utc_now()
    stray = pay(sqlite_store, start(sqlite_store, "frank", "starter", now), now)
    record(sqlite_store, stray.id, state=PurchaseState.FAILED)
    review = pay(sqlite_store, start(sqlite_store, "gina", "starter", now), now)
    record(sqlite_store, review.id, state=PurchaseState.NEEDS_REVIEW)
    ledger = TokenLedger(sqlite_store)
    ledger.credit("frank", 3, key="orphan", refs={"purchase_id": "pur_nowhere"})
    seen: list[tuple[str, int, bool]] = []
    report = reconcile(sqlite_store, None, now, progress=lambda *a: seen.append(a), max_kept=2)
    assert report.count(Check.CREDITS).differences == 3
    assert report.truncated and len(report.differences) == 2
    assert ("transactions", 16, True) in seen and ("purchases", 8, True) in seen


# -- the same on Firestore -------------------------------------------------------------------


@pytest.fixture
def firestore_store(firestore_emulator: FirestoreEmulator) -> Iterator[FirestoreStore]:
    store = FirestoreStore(f"demo-reconcile-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


def test_reconcile_on_firestore(firestore_store: FirestoreStore) -> None:
    built = build(firestore_store)
    intents = [intent(p) for p in built.purchases.values()]
    report = check_with(firestore_store, intents, built=built)
    assert report.ok, report.differences
    assert (report.transactions, report.entries) == (13, 26)
    firestore_store.account_ref("alice").update({"balance": 1})
    changed = reconcile(firestore_store, None, utc_now())
    assert kinds(changed) == {("balance_mismatch", "alice"), ("conservation", "ledger")}


# -- three ways through the app itself: sandbox payments, the webhook, the CLI ------------------


def test_a_sandbox_purchase_reconciles_with_the_provider(tmp_path: Path) -> None:
    server = AppServer({}).start()
    try:
        buyer = Buyer(server.url, "reconcile@example.com")
        started = buyer.checkout("popular")
        paid = buyer.pay_on_checkout_page(started["url"], "4242 4242 4242 4242")
        assert paid.status_code == 303
        wait_for(lambda: buyer.balance() == 110, "the webhook to credit 110 tokens")
        db = Path(server.env["STORE_URL"].removeprefix("sqlite:///"))
        sandbox = Path(server.env["SANDBOX_DB_PATH"])
        assert sandbox.name == "sandbox.db"
        done = run_cli(db, sandbox.parent, "--days", "1")
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^provider_payments\s+1\s+0$", done.stdout, re.MULTILINE), done.stdout
