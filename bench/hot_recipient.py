"""One popular recipient tipped from several server processes while it spends.

Used by ``bench/tip_bench.py`` (the hot-recipient table) and by the multi-process
contention test. Each process is a real OS process (``multiprocessing`` spawn)
with its own store object (its own Firestore client or SQLite connections); its
senders are threads. Process 0 also runs the recipient's spender, which spends
one token at a time for as long as any tip is in flight.

A tip or spend that raises a storage error (a 503) is retried with the same key,
as a client would, so one that committed before failing is not counted as
failed. Afterwards ``HotCheck`` says whether every token is accounted for: the recipient
holds the tips minus its spends, each sender its funding minus its own tips, and
the tokens held are the funding minus the spends.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event

from services.errors import InsufficientBalance, StorageContention, StorageError
from services.store.firestore import FirestoreStore
from services.store.port import LedgerStore
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger

READY_TIMEOUT_S = 120.0
ATTEMPTS = 4  # per tip or spend, on storage errors


def tip_amount(i: int) -> int:
    """Tips of 1, 2 and 3 tokens, so a lost or doubled tip shows in the sums."""
    return 1 + i % 3


@dataclass(frozen=True)
class StoreSpec:
    """How a process opens its own store: ``sqlite`` with a file path, or ``firestore``
    with a project (the emulator's host comes from the environment)."""

    kind: str
    where: str

    def open(self) -> LedgerStore:
        if self.kind == "sqlite":
            return SqliteStore(self.where)
        return FirestoreStore(self.where)


@dataclass
class SenderResult:
    user_id: str
    funded: int
    tipped: int = 0
    ok: int = 0
    contention: int = 0
    other: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class SpendResult:
    spent: int = 0
    refused: int = 0  # nothing to spend yet: not an error
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class HotPlan:
    spec: StoreSpec
    prefix: str
    processes: int
    senders: int
    tips_per_sender: int
    spend_every_s: float = 0.02  # the spender's pace; 0 for no spender

    @property
    def recipient(self) -> str:
        return f"{self.prefix}-star"

    def sender(self, n: int) -> str:
        return f"{self.prefix}-fan-{n:02d}"

    def funding(self, n: int) -> int:
        return sum(tip_amount(n + i) for i in range(self.tips_per_sender))

    def senders_of(self, process: int) -> list[int]:
        return list(range(process, self.senders, self.processes))


def prepare(plan: HotPlan) -> None:
    store = plan.spec.open()
    try:
        ledger = TokenLedger(store)
        ledger.open_account(plan.recipient)
        for n in range(plan.senders):
            ledger.open_account(plan.sender(n))
            ledger.credit(plan.sender(n), plan.funding(n), key=f"fund-{plan.sender(n)}")
    finally:
        store.close()


def _settled(attempt: Callable[[], object]) -> object:
    """``attempt`` retried on a storage error, as a client retries a 503 with the same
    idempotency key: a call that failed after its commit then returns its result."""
    for _ in range(ATTEMPTS - 1):
        try:
            return attempt()
        except StorageError:
            continue
    return attempt()


def _tip_all(ledger: TokenLedger, plan: HotPlan, n: int, result: SenderResult) -> None:
    for i in range(plan.tips_per_sender):
        amount = tip_amount(n + i)
        key = f"{result.user_id}-t{i}"
        start = time.perf_counter()
        try:
            _settled(lambda: ledger.transfer(result.user_id, plan.recipient, amount, key=key))  # noqa: B023
        except StorageContention:
            result.contention += 1
            continue
        except Exception as exc:  # every failure is counted, none stops the run
            result.other[type(exc).__name__] += 1
            continue
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        result.tipped += amount
        result.ok += 1


def _spend_while(ledger: TokenLedger, plan: HotPlan, stop: threading.Event) -> SpendResult:
    result, n = SpendResult(), 0
    while not stop.wait(plan.spend_every_s):
        n += 1
        key = f"{plan.recipient}-spend-{n}"
        try:
            _settled(lambda: ledger.spend(plan.recipient, 1, key=key))  # noqa: B023
            result.spent += 1
        except InsufficientBalance:
            result.refused += 1
        except Exception as exc:  # counted, as a tip's failure is
            result.errors[type(exc).__name__] += 1
    return result


def worker(
    plan: HotPlan, process: int, ready: Event, go: Event, tips_done: Event, out: object
) -> None:
    """One server process: its own store, one thread per sender, and (process 0)
    the recipient's spender; puts (senders, spend result or None) on ``out``."""
    store = plan.spec.open()
    ledger = TokenLedger(store)
    numbers = plan.senders_of(process)
    results = [SenderResult(plan.sender(n), plan.funding(n)) for n in numbers]
    for result in results:
        ledger.balance(result.user_id)  # connections are made before the clock starts
    ready.set()
    go.wait()
    threads = [
        threading.Thread(target=_tip_all, args=(ledger, plan, n, r))
        for n, r in zip(numbers, results, strict=True)
    ]
    stop, spent = threading.Event(), [SpendResult()]
    spender = threading.Thread(
        target=lambda: spent.__setitem__(0, _spend_while(ledger, plan, stop))
    )
    if process == 0 and plan.spend_every_s > 0:
        spender.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((process, results, None))  # type: ignore[attr-defined]
    if process == 0:
        tips_done.wait()
        stop.set()
        if spender.is_alive():
            spender.join()
        out.put((process, [], spent[0]))  # type: ignore[attr-defined]
    store.close()


@dataclass(frozen=True)
class HotCheck:
    recipient_balance: int
    tipped: int
    spent: int
    senders_exact: bool
    funded: int
    held: int
    entries_total: int  # the recipient's history summed

    @property
    def ok(self) -> bool:
        recipient = self.recipient_balance == self.tipped - self.spent >= 0
        history = self.entries_total == self.recipient_balance
        return (
            recipient and history and self.senders_exact and self.held == self.funded - self.spent
        )


@dataclass(frozen=True)
class HotRun:
    plan: HotPlan
    senders: list[SenderResult]
    spend: SpendResult
    seconds: float
    check: HotCheck


def history_total(ledger: TokenLedger, user_id: str) -> int:
    total, cursor = 0, None
    while True:
        page = ledger.history(user_id, limit=100, cursor=cursor)
        total += sum(e.amount for e in page.entries)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


def verify(plan: HotPlan, senders: list[SenderResult], spend: SpendResult) -> HotCheck:
    store = plan.spec.open()
    try:
        ledger = TokenLedger(store)
        balances = {s.user_id: ledger.balance(s.user_id).balance for s in senders}
        got = ledger.balance(plan.recipient).balance
        return HotCheck(
            recipient_balance=got,
            tipped=sum(s.tipped for s in senders),
            spent=spend.spent,
            senders_exact=all(balances[s.user_id] == s.funded - s.tipped for s in senders),
            funded=sum(s.funded for s in senders),
            held=got + sum(balances.values()),
            entries_total=history_total(ledger, plan.recipient),
        )
    finally:
        store.close()


def run(plan: HotPlan) -> HotRun:
    """Prepare, run ``plan.processes`` processes at once, collect, and verify."""
    prepare(plan)
    context = multiprocessing.get_context("spawn")
    go, tips_done, out = context.Event(), context.Event(), context.Queue()
    readies = [context.Event() for _ in range(plan.processes)]
    procs = [
        context.Process(target=worker, args=(plan, p, readies[p], go, tips_done, out))
        for p in range(plan.processes)
    ]
    for proc in procs:
        proc.start()
    try:
        for ready in readies:
            if not ready.wait(READY_TIMEOUT_S):
                raise RuntimeError("a server process did not start in time")
        start = time.perf_counter()
        go.set()
        senders: list[SenderResult] = []
        for _ in range(plan.processes):
            _, results, _ = out.get()
            senders.extend(results)
        seconds = time.perf_counter() - start
        tips_done.set()
        _, _, spend = out.get()
    finally:
        tips_done.set()
        for proc in procs:
            proc.join(timeout=60)
    return HotRun(plan, senders, spend, seconds, verify(plan, senders, spend))
