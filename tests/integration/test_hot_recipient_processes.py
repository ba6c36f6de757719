"""One recipient tipped from three server processes on one emulator while it spends.

The processes are real OS processes, each with its own Firestore client, so no
in-process lock keeps the ledger right: only the store's transactions and its
blind shard credits do. No timing is asserted; every token must be accounted for.
"""

from __future__ import annotations

import itertools

import pytest

from bench.hot_recipient import HotPlan, StoreSpec, run
from services.ledger.model import SystemAccount
from services.reconciliation import Check, reconcile
from services.store.firestore import FirestoreStore
from services.tokens import TokenLedger
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.ledger_reads import system_balances

PROJECT = "demo-hot-recipient"


@pytest.fixture
def plan(firestore_emulator: FirestoreEmulator) -> HotPlan:
    firestore_emulator.clear(PROJECT)
    return HotPlan(StoreSpec("firestore", PROJECT), "hot", 3, 9, 4, spend_every_s=0.02)


def test_tips_from_three_processes_while_the_recipient_spends_stay_exact(plan: HotPlan) -> None:
    done = run(plan)
    # A tip may still fail with a retryable storage error after its retries (a 503);
    # no other error, and every token is accounted for either way.
    retryable = {"StorageContention", "StorageUnavailable"}
    for sender in done.senders:
        assert not set(sender.other) - retryable, sender.other
    assert not set(done.spend.errors) - retryable
    check = done.check
    assert check.senders_exact, check
    assert check.recipient_balance == check.tipped - check.spent >= 0, check
    assert check.entries_total == check.recipient_balance, check
    assert check.held == check.funded - check.spent, check
    assert check.ok

    store = FirestoreStore(PROJECT)
    try:
        ledger = TokenLedger(store)
        system = system_balances(ledger)
        assert system[SystemAccount.SPEND] == check.spent
        assert check.held + sum(system.values()) == 0  # conservation
        history = ledger.history(plan.recipient, limit=100).entries
        assert all(e.balance_after is not None and e.balance_after >= 0 for e in history)
        account = ledger.balance(plan.recipient)
        assert (history[0].seq, history[0].balance_after) == (account.seq, account.balance)
        for newer, older in itertools.pairwise(history):
            assert older.balance_after == int(newer.balance_after or 0) - newer.amount
            assert older.seq == int(newer.seq or 0) - 1
        report = reconcile(store, None, ledger.clock())
        # The senders' funding is a purchase credit with no purchase record: only the
        # ledger's own checks apply here.
        for kind in (Check.TRANSACTIONS, Check.BALANCES, Check.NON_NEGATIVE, Check.CONSERVATION):
            assert report.counts[kind].differences == 0, report.differences
    finally:
        store.close()
