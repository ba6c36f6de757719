"""Reconciliation over a large SQLite ledger: time and peak memory as the journal grows.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.reconcile_bench [--entries 1000000]
[--accounts 1000] [--write docs/benchmarks.md]``.

A benchmark, not a test: it prints a table and asserts no timings. It builds one
ledger by bulk-inserting rows straight into the schema of ``services/store/sqlite.py``
(one paid purchase and its credit per account, then spends, transfers and grants
of two entries each, with correct balances, seqs and ``balance_after``), and grows
it to 10%, 30% and 100% of ``--entries``. At each size ``reconcile`` runs with the
provider check off in two fresh processes: a timed one, which also reads its peak
RSS (getrusage's ru_maxrss, and VmHWM); and one under ``tracemalloc`` for the peak
of Python allocations, which overlaps other work (see ``run``) because tracemalloc
slows it about 3.5x. Building happens in child processes too, so that this process
stays small: on Linux a child's ru_maxrss starts from its parent's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.report import context_line, write_section
from services.ledger.model import (
    Operation,
    OpKind,
    SystemAccount,
    TxnType,
    format_time,
    user_account,
)
from services.payments.model import Purchase, PurchaseState, User
from services.reconciliation import reconcile
from services.store.sqlite import ENTRY_COLUMNS, SqliteStore

START, END = "<!-- reconcile_bench:start -->", "<!-- reconcile_bench:end -->"
FRACTIONS = (0.1, 0.3, 1.0)
PACK_TOKENS, PACK_PRICE = 110, 999
BATCH = 20_000  # transactions per executemany batch
BUILD_CACHE_KIB = 256 * 1024  # SQLite page cache of the building process
MIB = 1024 * 1024
T0 = datetime(2026, 1, 1, tzinfo=UTC)

EntryRow = tuple[Any, ...]


@dataclass(frozen=True)
class Row:
    entries: int
    transactions: int
    seconds: float
    tracemalloc_mib: float
    peak_rss_mib: float  # VmHWM: this process image's own peak
    ru_maxrss_mib: float  # getrusage, which starts from the parent's high-water mark
    base_rss_mib: float  # VmHWM before reconciling: interpreter, imports, SQLite

    @property
    def per_s(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0


class LedgerBuilder:
    """Appends consistent journal transactions to a SQLite ledger, many per statement."""

    def __init__(self, path: Path, accounts: int) -> None:
        """Open (or create) the ledger and take its balances, seqs and counts from the file."""
        SqliteStore(str(path)).close()  # the schema, exactly as the app creates it
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(f"PRAGMA cache_size=-{BUILD_CACHE_KIB}")
        self.users = [f"user-{n:05d}" for n in range(accounts)]
        stored = dict(self._select("SELECT user_id, balance, seq FROM accounts"))
        self.balance = [stored[u][0] if u in stored else 0 for u in self.users]
        self.seq = [stored[u][1] if u in stored else 0 for u in self.users]
        self.count = self._scalar("SELECT COUNT(*) FROM journal_transactions")
        self.entries = self._scalar("SELECT COUNT(*) FROM entries")
        self.rand = random.Random(self.count)
        self.txns: list[EntryRow] = []
        self.rows: list[EntryRow] = []

    def _select(self, sql: str) -> list[tuple[str, tuple[int, int]]]:
        return [(row[0], (int(row[1]), int(row[2]))) for row in self.conn.execute(sql)]

    def _scalar(self, sql: str) -> int:
        return int(self.conn.execute(sql).fetchone()[0])

    # -- one transaction ---------------------------------------------------------

    def _now(self) -> str:
        return format_time(T0 + timedelta(milliseconds=self.count))

    def _user_entry(self, op: Operation, idx: int, u: int, amount: int, now: str) -> EntryRow:
        self.balance[u] += amount
        self.seq[u] += 1
        other = op.counterparty_id if op.user_id == self.users[u] else op.user_id
        counterparty = other if op.counterparty_id is not None else None
        return (
            op.transaction_id,
            idx,
            user_account(self.users[u]),
            amount,
            str(op.type),
            now,
            self.users[u],
            self.seq[u],
            self.balance[u],
            0,
            counterparty,
            op.reason,
        )

    @staticmethod
    def _system_entry(
        op: Operation, idx: int, account: SystemAccount, amount: int, now: str
    ) -> EntryRow:
        return (
            op.transaction_id,
            idx,
            str(account),
            amount,
            str(op.type),
            now,
            None,
            None,
            None,
            None,
            None,
            op.reason,
        )

    def _add(self, op: Operation, entries: list[EntryRow], now: str) -> None:
        refs = json.dumps(dict(op.refs), sort_keys=True)
        self.txns.append(
            (
                op.transaction_id,
                op.key,
                op.fingerprint(),
                str(op.kind),
                str(op.type),
                op.reason,
                refs,
                now,
            )
        )
        self.rows.extend(entries)
        self.count += 1
        self.entries += len(entries)

    def credit(self, u: int, amount: int, kind: TxnType, refs: dict[str, str]) -> None:
        key = f"{kind}:{refs.get('purchase_id') or self.count}"
        op = Operation(OpKind.CREDIT, key, self.users[u], amount, kind, "bench", refs=refs)
        now = self._now()
        system = self._system_entry(op, 0, SystemAccount.ISSUANCE, -amount, now)
        self._add(op, [system, self._user_entry(op, 1, u, amount, now)], now)

    def spend(self, u: int, amount: int) -> None:
        op = Operation(OpKind.DEBIT, f"spend:{self.count}", self.users[u], amount, TxnType.SPEND)
        now = self._now()
        system = self._system_entry(op, 1, SystemAccount.SPEND, amount, now)
        self._add(op, [self._user_entry(op, 0, u, -amount, now), system], now)

    def transfer(self, u: int, v: int, amount: int) -> None:
        op = Operation(
            OpKind.TRANSFER,
            f"transfer:{self.count}",
            self.users[u],
            amount,
            TxnType.TRANSFER,
            counterparty_id=self.users[v],
        )
        now = self._now()
        sent = self._user_entry(op, 0, u, -amount, now)
        self._add(op, [sent, self._user_entry(op, 1, v, amount, now)], now)

    def random_transaction(self) -> None:
        u, amount = self.rand.randrange(len(self.users)), self.rand.randint(1, 5)
        roll = self.rand.random()
        if roll < 0.15 or self.balance[u] < amount:
            self.credit(u, 20, TxnType.GRANT, {})
        elif roll < 0.6:
            self.spend(u, amount)
        else:
            v = (u + self.rand.randrange(1, len(self.users))) % len(self.users)
            self.transfer(u, v, amount)

    # -- writing -------------------------------------------------------------------

    def flush(self) -> None:
        self.conn.executemany(
            "INSERT INTO journal_transactions (id, idem_key, fingerprint, kind, type, reason, refs,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.txns,
        )
        self.conn.executemany(
            f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 12)})",  # noqa: S608
            self.rows,
        )
        self.txns, self.rows = [], []

    def save_accounts(self) -> None:
        created = format_time(T0)
        self.conn.executemany(
            "INSERT OR REPLACE INTO accounts (user_id, balance, debt, seq, created_at)"
            " VALUES (?, ?, 0, ?, ?)",
            [(user, self.balance[n], self.seq[n], created) for n, user in enumerate(self.users)],
        )

    def purchases(self) -> None:
        """One paid purchase of the popular pack per account, with its credit (once)."""
        if self.count:
            return
        self.conn.execute("BEGIN")
        for n, user in enumerate(self.users):
            purchase = _purchase(user)
            self.conn.execute(
                "INSERT INTO users (id, username_lower, body) VALUES (?, NULL, ?)",
                (user, json.dumps(User(id=user, created_at=purchase.created_at).to_dict())),
            )
            self.credit(n, PACK_TOKENS, TxnType.PURCHASE, {"purchase_id": purchase.id})
            body = json.dumps(purchase.to_dict(), sort_keys=True)
            self.conn.execute(
                "INSERT INTO purchases (id, buyer_id, created_at, session_id,"
                " payment_intent_id, body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    purchase.id,
                    user,
                    purchase.created_at,
                    purchase.session_id,
                    purchase.payment_intent_id,
                    body,
                ),
            )
        self.flush()
        self.save_accounts()
        self.conn.execute("COMMIT")

    def grow_to(self, entries: int) -> None:
        """Append random two-entry transactions until the journal has ``entries`` entries."""
        self.conn.execute("BEGIN")
        while self.entries < entries:
            self.random_transaction()
            if len(self.txns) >= BATCH:
                self.flush()
        self.flush()
        self.save_accounts()
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.conn.close()


def _purchase(user: str) -> Purchase:
    pid = f"pur_bench_{user}"
    created = format_time(T0)
    return Purchase(
        id=pid,
        buyer_id=user,
        user_id=user,
        pack_id="popular",
        tokens=PACK_TOKENS,
        amount=PACK_PRICE,
        currency="usd",
        state=PurchaseState.PAID,
        created_at=created,
        updated_at=created,
        session_id=f"cs_bench_{user}",
        payment_intent_id=f"pi_bench_{user}",
        credit_txn_id=Operation(
            OpKind.CREDIT, f"purchase:{pid}", user, PACK_TOKENS, TxnType.PURCHASE
        ).transaction_id,
    )


# -- measuring, in a fresh process per size ---------------------------------------------------


def rss_mib() -> float:
    """This process's peak RSS: getrusage's ru_maxrss (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_rss_mib() -> float:
    """The peak RSS of this process image alone (Linux VmHWM), else ``rss_mib``.

    On Linux a child's ru_maxrss starts from its parent's high-water mark (fork copies it
    and exec keeps it), so in a child launched by a bigger process it shows the parent.
    VmHWM belongs to the memory map that exec created, so it is the child's own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return rss_mib()


def build(path: Path, entries: int, accounts: int) -> dict[str, float]:
    """Grow the ledger at ``path`` to ``entries`` entries. Run in a process of its own."""
    started = time.perf_counter()
    builder = LedgerBuilder(path, accounts)
    try:
        builder.purchases()
        builder.grow_to(entries)
    finally:
        builder.close()
    return {"entries": builder.entries, "seconds": time.perf_counter() - started}


def timed(path: Path) -> dict[str, float]:
    """One timed reconciliation and the peak RSS it reached. Run in a process of its own."""
    store = SqliteStore(str(path))
    base = own_peak_rss_mib()
    start = time.perf_counter()
    report = reconcile(store, None, datetime.now(UTC))
    seconds = time.perf_counter() - start
    peak, ru_maxrss = own_peak_rss_mib(), rss_mib()
    store.close()
    if not report.ok:
        raise RuntimeError(f"the bench ledger does not reconcile: {report.differences[:5]}")
    return {
        "entries": report.entries,
        "transactions": report.transactions,
        "seconds": seconds,
        "peak_rss_mib": peak,
        "ru_maxrss_mib": ru_maxrss,
        "base_rss_mib": base,
    }


def traced(path: Path) -> dict[str, float]:
    """The tracemalloc peak of one reconciliation. Run in a process of its own."""
    store = SqliteStore(str(path))
    tracemalloc.start()
    reconcile(store, None, datetime.now(UTC))
    peak = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    store.close()
    return {"tracemalloc_mib": peak}


def start_child(*args: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.reconcile_bench", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def result(child: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{child.args!r} exited with {child.returncode}")
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return data


def snapshot(path: Path, n: int) -> Path:
    """A copy for the traced run, so that the next build can go on meanwhile."""
    copy = path.with_name(f"snapshot-{n}.db")
    shutil.copyfile(path, copy)  # the builder checkpointed and closed: no WAL left
    return copy


def build_size(path: Path, entries: int, accounts: int) -> None:
    built = result(start_child("--build", path, "--to", entries, "--accounts", accounts))
    print(f"built {int(built['entries']):,} entries in {built['seconds']:.1f} s", flush=True)


def add_trace(row: dict[str, float], tracing: subprocess.Popen[str]) -> None:
    row.update(result(tracing))
    print(format_row(_row(row)), flush=True)


def run(total: int, accounts: int) -> tuple[list[Row], float]:
    """The rows, and the peak RSS of this process in MiB.

    A traced run (3.5x slower) overlaps the next build; the last one, with nothing left
    to overlap, runs beside the last timed run, on the other CPU.
    """
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        path = Path(tmp) / "ledger.db"
        tracing: subprocess.Popen[str] | None = None
        for n, fraction in enumerate(FRACTIONS):
            build_size(path, int(total * fraction), accounts)
            if tracing is not None:
                add_trace(rows[-1], tracing)
            last = n == len(FRACTIONS) - 1
            tracing = start_child("--traced", path) if last else None
            rows.append(result(start_child("--timed", path)))
            tracing = tracing or start_child("--traced", snapshot(path, n))
        if tracing is not None:
            add_trace(rows[-1], tracing)
    return [_row(data) for data in rows], own_peak_rss_mib()


def _row(data: dict[str, float]) -> Row:
    values: dict[str, Any] = dict(data)
    values["entries"], values["transactions"] = int(data["entries"]), int(data["transactions"])
    return Row(**values)


# -- the report --------------------------------------------------------------------------------

COLUMNS = (
    "entries",
    "transactions",
    "seconds",
    "entries/s",
    "tracemalloc peak MiB",
    "max RSS MiB",
    "VmHWM MiB",
)


def format_row(row: Row) -> str:
    cells = (
        f"{row.entries:,}",
        f"{row.transactions:,}",
        f"{row.seconds:.1f}",
        f"{row.per_s:,.0f}",
        f"{row.tracemalloc_mib:.1f}",
        f"{row.ru_maxrss_mib:.1f}",
        f"{row.peak_rss_mib:.1f}",
    )
    return "| " + " | ".join(cells) + " |"


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    return "\n".join(lines + [format_row(r) for r in rows])


def interpretation(rows: list[Row], accounts: int, own_rss: float) -> str:
    small, large = rows[0], rows[-1]
    growth = large.entries / small.entries
    traced = large.tracemalloc_mib / small.tracemalloc_mib if small.tracemalloc_mib else 0.0
    rss = large.peak_rss_mib - small.peak_rss_mib
    verdict = "met" if traced < 1.5 and rss < 16 else "MISSED"
    return (
        f"Target, memory that does not grow with the ledger: {verdict}. From {small.entries:,} "
        f"to {large.entries:,} entries ({growth:.0f}x the journal; the same {accounts:,} "
        f"accounts and purchases) the tracemalloc peak went from {small.tracemalloc_mib:.1f} "
        f"to {large.tracemalloc_mib:.1f} MiB ({traced:.2f}x) and the peak RSS from "
        f"{small.peak_rss_mib:.1f} to {large.peak_rss_mib:.1f} MiB ({rss:+.1f} MiB), of which "
        f"{large.base_rss_mib:.1f} MiB were there before reconciling (interpreter, imports, "
        f"SQLite). Memory follows the accounts, the purchases and the store's page size, not "
        f"the number of entries. Time grows linearly, at about {large.per_s:,.0f} entries/s"
        f". On Linux a child's ru_maxrss starts from its parent's high-water mark, so "
        f"the parent process stays small (it peaked at {own_rss:.1f} MiB) and VmHWM, the "
        f"child's own peak, is shown beside it."
    )


def section(context: str, rows: list[Row], accounts: int, own_rss: float) -> str:
    notes = (
        f"`reconcile(store, None, now)` (provider check off) over a SQLite ledger of {accounts:,} "
        f"accounts, each with one paid purchase and its credit, then random spends, transfers "
        f"and grants of two entries each, bulk-inserted. Each size runs in fresh processes: "
        f"seconds is one timed run; max RSS (`resource.getrusage` ru_maxrss) and VmHWM are "
        f"read in that process after the run (interpreter and imports included); tracemalloc "
        f"peak comes from a second run under tracemalloc (about 3.5x slower), made on a copy "
        f"of the file while the next size was being built, or, for the largest size, beside "
        f"its timed run on the other CPU (the other timed runs had the machine to themselves)."
    )
    parts = ["## Reconciliation (`bench/reconcile_bench.py`)", context, table(rows), notes]
    parts.append(interpretation(rows, accounts, own_rss))
    return f"{START}\n" + "\n\n".join(parts) + f"\n{END}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000, help="the largest size")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--write", type=Path, help="replace the reconcile_bench section here")
    # The children's jobs:
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--to", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child_job(args: argparse.Namespace) -> dict[str, float] | None:
    if args.build:
        return build(args.build, args.to, args.accounts)
    if args.timed:
        return timed(args.timed)
    if args.traced:
        return traced(args.traced)
    return None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    job = child_job(args)
    if job is not None:
        print(json.dumps(job))
        return
    context = context_line()
    print(context)
    print(table([]), flush=True)
    rows, own_rss = run(args.entries, args.accounts)
    print("\n" + table(rows) + "\n\n" + interpretation(rows, args.accounts, own_rss))
    if args.write:
        write_section(args.write, section(context, rows, args.accounts, own_rss), START, END)
        print(f"\nwrote {args.write}")


if __name__ == "__main__":
    main(sys.argv[1:])
