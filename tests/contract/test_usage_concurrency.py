"""Concurrent increments on one usage session, from threads on separate store objects.

Each store object stands for another server process. Whatever the interleaving,
what the session captured is exactly the sum of the increments acknowledged,
and never more than the reserve.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from services.errors import ReserveExceeded, StorageError
from services.ledger.model import JournalTransaction, SystemAccount, TxnType
from services.tokens import TokenLedger
from services.usage import UsageMeter
from tests.contract.conftest import StoreFactory
from tests.support.ledger_reads import system_balances

THREADS = 4
CHARGES_PER_THREAD = 6
RESERVE = 30  # of the 48 tokens the threads ask for in all
MAX_ATTEMPTS = 30


def charge_until_answered(meter: UsageMeter, session_id: str, amount: int, key: str) -> object:
    """A storage error (contention, a spent time budget) is retryable: the same key again,
    as a client retries a 503, until a real answer; a commit that did land is replayed."""
    for attempt in range(MAX_ATTEMPTS):
        time.sleep(random.uniform(0, 0.05 * 2 ** min(attempt, 5)))  # jittered client backoff
        try:
            return meter.charge("caller", session_id, amount, key=key)
        except ReserveExceeded as exc:
            return exc
        except StorageError:
            continue
    raise AssertionError(f"{key} still failing after {MAX_ATTEMPTS} attempts")


def test_concurrent_increments_are_exact(store_factory: StoreFactory) -> None:
    meters = [UsageMeter(TokenLedger(store_factory())) for _ in range(2)]
    meters[0].ledger.open_account("caller")
    meters[0].ledger.credit("caller", 100, key="fund")
    session = meters[0].start("caller", RESERVE, key="call", ttl_s=600)
    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> list[tuple[str, int, object]]:
        meter, answers = meters[i % len(meters)], []
        barrier.wait()
        for n in range(CHARGES_PER_THREAD):
            amount, key = 1 + (i + n) % 3, f"t{i}-m{n}"  # 1 to 3 tokens
            answers.append((key, amount, charge_until_answered(meter, session.id, amount, key)))
        return answers

    with ThreadPoolExecutor(THREADS) as pool:
        results = [a for answers in pool.map(worker, range(THREADS)) for a in answers]
    acked = [(key, amount, r) for key, amount, r in results if isinstance(r, JournalTransaction)]
    refused = [r for _, _, r in results if isinstance(r, ReserveExceeded)]
    assert len(acked) + len(refused) == THREADS * CHARGES_PER_THREAD
    captured = sum(amount for _, amount, _ in acked)
    assert sum(amount for _, amount, _ in results) == 48
    assert refused, "48 tokens asked of a 30-token reserve: some increments must be refused"
    assert RESERVE - 2 <= captured <= RESERVE  # refused ones asked for more than was left

    ledger = meters[1].ledger
    s = UsageMeter(TokenLedger(store_factory())).session("caller", session.id)
    assert (s.captured, s.remaining, s.reserved) == (captured, RESERVE - captured, RESERVE)
    assert ledger.balance("caller").balance == 100 - captured
    assert system_balances(ledger)[SystemAccount.SPEND] == captured
    history = ledger.history("caller", limit=100).entries
    assert len([e for e in history if e.type == TxnType.USAGE]) == len(acked)
    # Each acknowledged increment's running total is distinct: they were applied one by one.
    totals = sorted(int(txn.refs["captured"]) for _, _, txn in acked)
    assert len(set(totals)) == len(acked) and totals[-1] == captured
    for key, amount, txn in acked:  # a retry from any process returns the first answer
        assert meters[0].charge("caller", session.id, amount, key=key) == txn
    assert ledger.balance("caller").balance == 100 - captured
