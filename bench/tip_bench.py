"""Tips from many senders to one popular recipient, on SQLite and the Firestore emulator.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.tip_bench [--store sqlite|firestore|all]
[--tips N] [--cross-tips N] [--threads 16] [--processes 1,2,4] [--senders 32]
[--hot-tips N] [--write docs/benchmarks.md]``.

A benchmark, not a test: it prints a table and asserts no timings. Every thread is
its own sender, opened and funded with exactly the tips it will send before the
clock starts, and every tip is a ``transfer`` to the same recipient. Variants:

* one store: one store object shared by every thread (one server process);
* two stores: two store objects, half the threads each (two server processes; two
  Firestore clients, or two SQLite handles on one file).

Afterwards the recipient must hold exactly the successful tips and each sender its
funding minus its own successful tips; the script exits 1 when a token is missing.

The hot-recipient table (``bench/hot_recipient.py``) runs the same tips from 1, 2
and 4 real server processes, each its own store, ``--senders`` senders in all,
while the recipient spends a token every 20 ms from the first process; every
token must be accounted for there too (tips minus spends, and the recipient's
history summing to its balance).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.hot_recipient import HotPlan, HotRun, StoreSpec
from bench.hot_recipient import run as run_hot
from bench.report import context_line, emulator, percentile, write_section
from services.errors import StorageContention
from services.store.firestore import FirestoreStore
from services.store.port import LedgerStore
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger

PROJECT = "tip-bench"
START, END = "<!-- tip_bench:start -->", "<!-- tip_bench:end -->"
ONE, TWO = "one store", "two stores"
SQLITE, FIRESTORE = "sqlite", "firestore-emulator"
# (one-store tips, two-store tips) when --tips / --cross-tips are not given.
DEFAULT_TIPS = {"sqlite": (2000, 2000), "firestore": (400, 40)}
# Tips per sender in the hot-recipient table when --hot-tips is not given.
DEFAULT_HOT_TIPS = {"sqlite": 40, "firestore": 10}


def tip_amount(i: int) -> int:
    """Tips of 1, 2 and 3 tokens, so a lost or doubled tip shows in the sums."""
    return 1 + i % 3


@dataclass
class Sender:
    """One sender thread: its account, its planned tips and what happened to them."""

    user_id: str
    tips: range
    latencies_ms: list[float] = field(default_factory=list)
    tipped: int = 0
    contention: int = 0
    other: Counter[str] = field(default_factory=Counter)

    @property
    def funded(self) -> int:
        return sum(tip_amount(i) for i in self.tips)


@dataclass(frozen=True)
class Check:
    recipient_balance: int
    tipped: int
    senders_exact: bool
    funded: int
    held: int

    @property
    def ok(self) -> bool:
        exact = self.recipient_balance == self.tipped and self.senders_exact
        return exact and self.held == self.funded


@dataclass(frozen=True)
class Row:
    store: str
    variant: str
    threads: int
    ok: int
    contention: int
    other: Counter[str]
    seconds: float
    p50_ms: float
    p99_ms: float
    check: Check

    @property
    def tips(self) -> int:
        return self.ok + self.contention + self.other.total()

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def plan(prefix: str, tips: int, threads: int) -> list[Sender]:
    return [Sender(f"{prefix}-fan-{t:02d}", range(t, tips, threads)) for t in range(threads)]


def prepare(ledger: TokenLedger, recipient: str, senders: list[Sender]) -> None:
    ledger.open_account(recipient)
    for sender in senders:
        ledger.open_account(sender.user_id)
        if sender.funded:
            ledger.credit(sender.user_id, sender.funded, key=f"fund-{sender.user_id}")


def tip_all(
    ledger: TokenLedger, recipient: str, sender: Sender, barrier: threading.Barrier
) -> None:
    ledger.balance(sender.user_id)  # this thread's connection is made before the clock starts
    barrier.wait()
    for i in sender.tips:
        amount = tip_amount(i)
        start = time.perf_counter()
        try:
            ledger.transfer(sender.user_id, recipient, amount, key=f"{sender.user_id}-tip-{i}")
        except StorageContention:
            sender.contention += 1
            continue
        except Exception as exc:  # a benchmark counts every failure instead of stopping
            sender.other[type(exc).__name__] += 1
            continue
        sender.latencies_ms.append((time.perf_counter() - start) * 1000)
        sender.tipped += amount


def run_threads(ledgers: list[TokenLedger], recipient: str, senders: list[Sender]) -> float:
    """Sender t tips from ledger t % len(ledgers); returns the wall-clock seconds."""
    barrier = threading.Barrier(len(senders) + 1)
    workers = [
        threading.Thread(target=tip_all, args=(ledgers[t % len(ledgers)], recipient, s, barrier))
        for t, s in enumerate(senders)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def check(ledger: TokenLedger, recipient: str, senders: list[Sender]) -> Check:
    balances = {s.user_id: ledger.balance(s.user_id).balance for s in senders}
    got = ledger.balance(recipient).balance
    return Check(
        recipient_balance=got,
        tipped=sum(s.tipped for s in senders),
        senders_exact=all(balances[s.user_id] == s.funded - s.tipped for s in senders),
        funded=sum(s.funded for s in senders),
        held=got + sum(balances.values()),
    )


def run_variant(
    store: str, variant: str, stores: list[LedgerStore], tips: int, threads: int
) -> Row:
    prefix = variant.split(maxsplit=1)[0]
    recipient = f"{prefix}-star"
    senders = plan(prefix, tips, threads)
    ledgers = [TokenLedger(s) for s in stores]
    prepare(ledgers[0], recipient, senders)
    seconds = run_threads(ledgers, recipient, senders)
    latencies = [ms for s in senders for ms in s.latencies_ms]
    return Row(
        store,
        variant,
        threads,
        len(latencies),
        sum(s.contention for s in senders),
        sum((s.other for s in senders), Counter[str]()),
        seconds,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        check(ledgers[0], recipient, senders),
    )


def bench_store(
    store: str, make: Callable[[], LedgerStore], tips: tuple[int, int], threads: int
) -> list[Row]:
    made: list[LedgerStore] = []

    def new_store() -> LedgerStore:
        made.append(make())
        return made[-1]

    rows: list[Row] = []
    try:
        rows.append(run_variant(store, ONE, [new_store()], tips[0], threads))
        print(format_row(rows[-1]), flush=True)
        pair = [new_store(), new_store()]
        rows.append(run_variant(store, TWO, pair, tips[1], max(2, threads // 2 * 2)))
        print(format_row(rows[-1]), flush=True)
    finally:
        for made_store in made:
            made_store.close()
    return rows


@dataclass(frozen=True)
class HotOptions:
    processes: tuple[int, ...]
    senders: int
    tips_per_sender: int | None


@dataclass(frozen=True)
class HotRow:
    store: str
    run: HotRun

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.run.senders)

    @property
    def errors(self) -> int:
        return sum(s.contention + s.other.total() for s in self.run.senders)

    @property
    def per_s(self) -> float:
        return self.ok / self.run.seconds if self.run.seconds > 0 else 0.0

    def latency(self, fraction: float) -> float:
        return percentile([ms for s in self.run.senders for ms in s.latencies_ms], fraction)


def bench_hot(store: str, spec: StoreSpec, hot: HotOptions, default_tips: int) -> list[HotRow]:
    rows: list[HotRow] = []
    for processes in hot.processes:
        plan = HotPlan(
            spec, f"hot{processes}", processes, hot.senders, hot.tips_per_sender or default_tips
        )
        rows.append(HotRow(store, run_hot(plan)))
        print(format_hot_row(rows[-1]), flush=True)
    return rows


def run_sqlite(
    tips: int | None, cross_tips: int | None, threads: int, hot: HotOptions
) -> tuple[list[Row], list[HotRow]]:
    one, two = DEFAULT_TIPS["sqlite"]
    with tempfile.TemporaryDirectory(prefix="tip-bench-") as tmp:
        path = str(Path(tmp) / "ledger.db")
        counts = (tips or one, cross_tips or tips or two)
        rows = bench_store(SQLITE, lambda: SqliteStore(path), counts, threads)
        spec = StoreSpec("sqlite", str(Path(tmp) / "hot.db"))
        return rows, bench_hot(SQLITE, spec, hot, DEFAULT_HOT_TIPS["sqlite"])


def run_firestore(
    tips: int | None, cross_tips: int | None, threads: int, hot: HotOptions
) -> tuple[list[Row], list[HotRow]]:
    one, two = DEFAULT_TIPS["firestore"]
    print("starting the Firestore emulator ...", flush=True)
    with emulator():
        counts = (tips or one, cross_tips or two)
        rows = bench_store(FIRESTORE, lambda: FirestoreStore(PROJECT), counts, threads)
        spec = StoreSpec("firestore", f"{PROJECT}-hot")
        return rows, bench_hot(FIRESTORE, spec, hot, DEFAULT_HOT_TIPS["firestore"])


COLUMNS = (
    "store",
    "variant",
    "threads",
    "tips ok",
    "errors: contention",
    "errors: other",
    "transfers/s",
    "p50 ms",
    "p99 ms",
)


def format_row(row: Row) -> str:
    cells = (row.store, row.variant, str(row.threads), str(row.ok), str(row.contention))
    figures = (f"{row.per_s:.1f}", f"{row.p50_ms:.1f}", f"{row.p99_ms:.1f}")
    return "| " + " | ".join((*cells, str(row.other.total()), *figures)) + " |"


HOT_COLUMNS = (
    "store",
    "processes",
    "senders",
    "tips ok",
    "errors",
    "tips/s",
    "p50 ms",
    "p99 ms",
    "spends ok",
    "spend errors",
    "exact",
)


def format_hot_row(row: HotRow) -> str:
    run = row.run
    cells = (row.store, str(run.plan.processes), str(run.plan.senders), str(row.ok))
    figures = (f"{row.per_s:.1f}", f"{row.latency(0.5):.1f}", f"{row.latency(0.99):.1f}")
    spends = (str(run.spend.spent), str(run.spend.errors.total()))
    exact = "yes" if run.check.ok else "NO"
    return "| " + " | ".join((*cells, str(row.errors), *figures, *spends, exact)) + " |"


def hot_table(rows: list[HotRow]) -> str:
    lines = ["| " + " | ".join(HOT_COLUMNS) + " |", "|" + "---|" * len(HOT_COLUMNS)]
    return "\n".join(lines + [format_hot_row(r) for r in rows])


def hot_check_line(row: HotRow) -> str:
    c, run = row.run.check, row.run
    errors = Counter[str]()
    for sender in run.senders:
        errors["StorageContention"] += sender.contention
        errors.update(sender.other)
    named = ", ".join(f"{k}: {n}" for k, n in sorted(errors.items()) if n)
    spend_errors = ", ".join(f"{k}: {n}" for k, n in sorted(run.spend.errors.items()))
    return (
        f"- {row.store}, {run.plan.processes} process{'es' if run.plan.processes > 1 else ''}: "
        f"recipient holds {c.recipient_balance} "
        f"= {c.tipped} tipped - {c.spent} spent; its history sums to {c.entries_total}; "
        f"senders exact: {'yes' if c.senders_exact else 'no'}; {c.held} of {c.funded} funded "
        f"tokens held"
        + (f"; tip errors: {named}" if named else "")
        + (f"; spend errors: {spend_errors}" if spend_errors else "")
    )


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + [format_row(r) for r in rows])


def check_line(row: Row) -> str:
    c = row.check
    other = ", ".join(f"{name}: {n}" for name, n in sorted(row.other.items()))
    return (
        f"- {row.store}, {row.variant}: recipient holds {c.recipient_balance} of "
        f"{c.tipped} tokens tipped; senders exact: {'yes' if c.senders_exact else 'no'}; "
        f"{c.held} of {c.funded} funded tokens held" + (f"; other errors: {other}" if other else "")
    )


def accounted(rows: list[Row]) -> str:
    verdict = "yes" if rows and all(r.check.ok for r in rows) else "no"
    return f"every token accounted for: {verdict}"


def by_variant(rows: list[Row], store: str) -> dict[str, Row]:
    return {r.variant: r for r in rows if r.store == store}


def interpret_sqlite(got: dict[str, Row]) -> str:
    one, two = got[ONE], got[TWO]
    share = two.per_s / one.per_s if one.per_s else 0.0
    failed = one.tips - one.ok + two.tips - two.ok
    return (
        f"On SQLite two store objects on one file ran at {two.per_s:.0f} transfers/s, "
        f"{share:.0%} of the {one.per_s:.0f}/s of one shared store, with p99 {one.p99_ms:.1f} ms "
        f"and {two.p99_ms:.1f} ms: every transfer takes the file's one write lock (BEGIN "
        f"IMMEDIATE) whichever accounts it touches, so the popular recipient only queues "
        f"writers that queue anyway, and {failed} of {one.tips + two.tips} tips failed."
    )


def interpret_firestore(got: dict[str, Row]) -> str:
    one, two = got[ONE], got[TWO]
    share = two.per_s / one.per_s if one.per_s else 0.0
    return (
        f"On the Firestore emulator one client sent {one.per_s:.1f} transfers/s (p50 "
        f"{one.p50_ms:.0f} ms, p99 {one.p99_ms:.0f} ms) and two clients {two.per_s:.1f}/s "
        f"({share:.0%} of one; p99 {two.p99_ms:.0f} ms, {two.contention} of {two.tips} gave up "
        f"with StorageContention): a tip's recipient is credited blind (an Increment on one "
        f"of its balance shards, no read of it), so clients no longer collide on the "
        f"recipient's document; each tip still reads its sender's account whole."
    )


def interpretation(rows: list[Row]) -> str:
    texts = []
    if by_variant(rows, SQLITE):
        texts.append(interpret_sqlite(by_variant(rows, SQLITE)))
    if by_variant(rows, FIRESTORE):
        texts.append(interpret_firestore(by_variant(rows, FIRESTORE)))
    lost = [f"{r.store}, {r.variant}" for r in rows if not r.check.ok]
    if lost:
        texts.append(f"Tokens are NOT accounted for in: {'; '.join(lost)}.")
    else:
        texts.append(
            f"In all {len(rows)} runs the recipient held exactly the successful tips and every "
            f"sender its funding minus its own successful tips, so no failed tip left tokens "
            f"behind and no tip was applied twice."
        )
    return " ".join(texts)


def hot_section(rows: list[HotRow]) -> list[str]:
    if not rows:
        return []
    notes = (
        "Hot recipient: each process is a separate OS process with its own store object "
        "(its own Firestore client, or its own SQLite connections), its senders threads; "
        "all senders tip one recipient while the first process spends one of the "
        "recipient's tokens every 20 ms (a refusal for want of tokens is not an error). "
        "tips/s counts successful tips over wall-clock time; errors are tips that raised."
    )
    checks = "\n".join(hot_check_line(r) for r in rows)
    verdict = "yes" if all(r.run.check.ok for r in rows) else "no"
    return [hot_table(rows), notes, checks + f"\n\nevery token accounted for: {verdict}."]


def section(context: str, rows: list[Row], hot: list[HotRow] | None = None) -> str:
    notes = (
        "Every thread is its own pre-funded sender, reads its balance before the clock starts "
        "(so connections are made untimed), and tips one recipient with `transfer` (1-3 "
        "tokens). transfers/s counts successful tips over wall-clock time; p50/p99 are "
        "latencies of successful tips; errors are tips that raised StorageContention "
        "(contention) or anything else (other)."
    )
    checks = "\n".join(check_line(r) for r in rows) + "\n\n" + accounted(rows) + "."
    parts = ["## Tips to one recipient (`bench/tip_bench.py`)", context, table(rows), notes]
    parts += [checks, interpretation(rows), *hot_section(hot or [])]
    return f"{START}\n" + "\n\n".join(parts) + f"\n{END}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "firestore", "all"), default="all")
    parser.add_argument(
        "--tips", type=int, help="tips per run (2000 SQLite; 400 one store on the emulator)"
    )
    parser.add_argument(
        "--cross-tips", type=int, help="tips for two stores (default --tips; 40 on the emulator)"
    )
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--processes", default="1,2,4", help="server processes per hot-recipient run"
    )
    parser.add_argument("--senders", type=int, default=32, help="senders in the hot runs")
    parser.add_argument(
        "--hot-tips", type=int, help="tips per sender in the hot runs (40 SQLite; 10 emulator)"
    )
    parser.add_argument("--write", type=Path, help="replace the tip_bench section here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context = context_line()
    print(context)
    print(table([]), flush=True)
    processes = tuple(int(p) for p in args.processes.split(",") if p)
    hot_options = HotOptions(processes, args.senders, args.hot_tips)
    rows: list[Row] = []
    hot: list[HotRow] = []
    if args.store in ("sqlite", "all"):
        done, hot_done = run_sqlite(args.tips, args.cross_tips, args.threads, hot_options)
        rows, hot = rows + done, hot + hot_done
    if args.store in ("firestore", "all"):
        done, hot_done = run_firestore(args.tips, args.cross_tips, args.threads, hot_options)
        rows, hot = rows + done, hot + hot_done
    print("\n" + table(rows) + "\n")
    print("\n".join(check_line(r) for r in rows))
    print(accounted(rows))
    print("\n" + interpretation(rows))
    print("\n" + "\n\n".join(hot_section(hot)))
    if args.write:
        write_section(args.write, section(context, rows, hot), START, END)
        print(f"\nwrote {args.write}")
    return 0 if all(r.check.ok for r in rows) and all(h.run.check.ok for h in hot) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
