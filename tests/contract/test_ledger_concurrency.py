"""Races against the real store: duplicate keys and a bank workload.

Store objects made by ``store_factory`` stand for separate server processes,
so races between them are settled by the store's own transactions.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from services.errors import InsufficientBalance, StorageContention, StorageError
from services.ledger.model import JournalTransaction
from services.tokens import TokenLedger
from tests.contract.conftest import StoreFactory

ACCOUNTS = [f"bank-{i}" for i in range(5)]
START = 200
BANK_SECONDS = 3.0


def race(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` from ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return work(i)
        except (StorageContention, InsufficientBalance) as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_same_key_from_16_threads_applies_once(store_factory: StoreFactory) -> None:
    ledger = TokenLedger(store_factory())
    ledger.open_account("racer")
    results = race(16, lambda _: ledger.credit("racer", 7, key="one-payment"))
    assert all(isinstance(r, JournalTransaction) for r in results), results
    assert len({r.id for r in results if isinstance(r, JournalTransaction)}) == 1
    assert ledger.balance("racer").balance == 7
    assert len(ledger.history("racer").entries) == 1


def test_same_key_from_two_processes_applies_once(store_factory: StoreFactory) -> None:
    ledgers = [TokenLedger(store_factory()) for _ in range(2)]
    ledgers[0].open_account("racer")
    results = race(8, lambda i: ledgers[i % 2].credit("racer", 9, key="shared-payment"))
    done = [r for r in results if isinstance(r, JournalTransaction)]
    # Contention may make a loser give up (retryable, nothing written); a
    # retry then returns the winner's result.
    for i, result in enumerate(results):
        if isinstance(result, StorageContention):
            done.append(ledgers[i % 2].credit("racer", 9, key="shared-payment"))
    assert len(done) == 8
    assert len({r.id for r in done}) == 1
    assert ledgers[1].balance("racer").balance == 9


def test_racing_spends_never_overdraw(store_factory: StoreFactory) -> None:
    ledger = TokenLedger(store_factory())
    ledger.open_account("hot")
    ledger.credit("hot", 10, key="fund-hot")
    results = race(16, lambda i: ledger.spend("hot", 1, key=f"spend-{i}"))
    spent = [r for r in results if isinstance(r, JournalTransaction)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert (len(spent), len(refused)) == (10, 6)
    assert ledger.balance("hot").balance == 0
    assert [e.balance_after for e in ledger.history("hot", limit=100).entries] == list(range(11))


def _transfer_loop(
    ledger: TokenLedger, seed: int, stop: threading.Event, counts: dict[str, int]
) -> None:
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        sender, recipient = rng.sample(ACCOUNTS, 2)
        n += 1
        try:
            ledger.transfer(sender, recipient, rng.randint(1, 5), key=f"t-{seed}-{n}")
            counts["ok"] += 1
        except InsufficientBalance:
            counts["short"] += 1
        except StorageError:  # contention, or no answer within the call's budget: retryable
            counts["contention"] += 1


def test_bank_workload_conserves_tokens_at_every_snapshot(store_factory: StoreFactory) -> None:
    ledgers = [TokenLedger(store_factory()) for _ in range(2)]
    for account in ACCOUNTS:
        ledgers[0].open_account(account)
        ledgers[0].credit(account, START, key=f"fund-{account}")
    total = START * len(ACCOUNTS)
    stop = threading.Event()
    counts = {"ok": 0, "short": 0, "contention": 0}
    workers = [
        threading.Thread(target=_transfer_loop, args=(ledgers[i % 2], i, stop, counts))
        for i in range(8)
    ]
    snapshots: list[dict[str, int]] = []
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + BANK_SECONDS
    while time.monotonic() < deadline:
        accounts = ledgers[1].store.get_accounts(ACCOUNTS)
        snapshots.append({a: accounts[a].balance for a in ACCOUNTS})
    stop.set()
    for worker in workers:
        worker.join()

    assert counts["ok"] > 0, counts
    assert len(snapshots) > 1
    for snapshot in snapshots:
        assert sum(snapshot.values()) == total, snapshot
        assert min(snapshot.values()) >= 0, snapshot
    final = TokenLedger(store_factory())
    for account in ACCOUNTS:
        balance = final.balance(account).balance
        entries = _all_entries(final, account)
        assert sum(entries) == balance
    assert sum(final.balance(a).balance for a in ACCOUNTS) == total


def _all_entries(ledger: TokenLedger, user: str) -> list[int]:
    amounts: list[int] = []
    cursor = None
    while True:
        page = ledger.history(user, limit=100, cursor=cursor)
        amounts += [e.amount for e in page.entries]
        if page.next_cursor is None:
            return amounts
        cursor = page.next_cursor
