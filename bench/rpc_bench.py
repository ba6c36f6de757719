"""Round trips per operation: Firestore's RPCs, counted on the wire by a gRPC client
interceptor, and SQLite's transactions, statements and WAL pages.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.rpc_bench [--store all] [--repeat 5]
[--write docs/benchmarks.md]``.

A benchmark, not a test: it prints a table and asserts nothing. The app's own
services (the composition root's, with the payment sandbox) run in this process
on a FirestoreStore whose client carries a counting interceptor next to the
deadline one; each operation runs ``--repeat`` times on fresh keys and the
table gives the fewest and most RPCs seen, and the kinds of the last run.

It also gives the median CPU time this process spent on one run (``time.process_time``:
every thread of the process, gRPC's own among them): the client's cost of an
operation, the emulator's not included. Operations run one at a time here, in
process; served under gunicorn's threads the same calls cost more (the webhook
bench gives the server's CPU per event).

On SQLite the same operations run on a store whose connections carry a trace
callback: it counts the statements run (each lets go of the GIL and takes it back)
and the write transactions. The connections also time their statement calls: the
CPU time an operation spends inside SQLite, and inside COMMIT (whose sync of the WAL
under ``synchronous=FULL`` is the largest single part of a paid event's). The WAL
is checkpointed and emptied before each run, so its frames afterwards are the pages
the run's commits wrote: what COMMIT's cost grows with, and what a checkpoint copies
later.
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

import grpc  # type: ignore[import-untyped]

from bench.report import context_line, emulator, write_section
from config.settings import load_settings
from services import container
from services.container import Services, build_services
from services.ledger.model import TxnType, format_time
from services.payments.model import User
from services.store.firestore import FirestoreStore
from services.store.firestore_client import open_client
from services.store.sqlite import SqliteStore
from tests.support.purchases import event, session_object
from tests.support.stripe_fixtures import fixture

PROJECT = "rpc-bench"
START, END = "<!-- rpc_bench:start -->", "<!-- rpc_bench:end -->"
SQLITE_START, SQLITE_END = "<!-- rpc_bench_sqlite:start -->", "<!-- rpc_bench_sqlite:end -->"
SQLITE_COLUMNS = ("transactions", "statements", "WAL pages")
STATEMENT_US, COMMIT_US = "statement µs", "COMMIT µs"  # CPU in the store's statement calls
CONNECT = sqlite3.connect
WAL_HEADER, FRAME_HEADER = 32, 24  # bytes (sqlite.org/fileformat.html, the WAL format)
PACK = "popular"
KINDS = (
    "BatchGetDocuments",
    "BeginTransaction",
    "Commit",
    "Rollback",
    "RunQuery",
    "RunAggregationQuery",
)


class RpcCounter(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """A gRPC client interceptor that counts RPCs by method name (the part after '/')."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        with self._lock:
            self.counts[str(details.method).rsplit("/", 1)[-1]] += 1
        return continuation(details, request)

    intercept_unary_unary = _count
    intercept_unary_stream = _count
    intercept_stream_unary = _count
    intercept_stream_stream = _count

    @contextmanager
    def measuring(self) -> Iterator[Counter[str]]:
        """Counts of the RPCs made inside the block."""
        with self._lock:
            self.counts.clear()
        seen: Counter[str] = Counter()
        yield seen
        with self._lock:
            seen.update(self.counts)


class SqliteMeter:
    """Statements and write transactions run on a store's connections, and the pages its
    commits wrote to the WAL (emptied before each measured run)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.statements: list[str] = []
        self.spent: Counter[str] = Counter()  # CPU µs in statements: see spend()
        self._lock = threading.Lock()

    def spend(self, sql: str, spent_us: int) -> None:
        """Add a statement call's CPU time (TimedConnection)."""
        with self._lock:
            self.spent[STATEMENT_US] += spent_us
            if sql == "COMMIT":
                self.spent[COMMIT_US] += spent_us

    def trace(self, sql: str) -> None:
        if not sql.startswith("--"):  # a trigger's statements are reported as comments
            with self._lock:
                self.statements.append(sql)

    @contextmanager
    def measuring(self) -> Iterator[Counter[str]]:
        with closing(sqlite3.connect(self.path)) as side:
            busy, _, _ = side.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            page_size = side.execute("PRAGMA page_size").fetchone()[0]
        if busy:
            raise RuntimeError("the WAL could not be emptied before a run")
        with self._lock:
            self.statements.clear()
            self.spent.clear()
        seen: Counter[str] = Counter()
        yield seen
        wal = self.path + "-wal"
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        with self._lock:
            seen.update(self.spent)
            seen["statements"] = len(self.statements)
            seen["transactions"] = sum(sql.startswith("BEGIN") for sql in self.statements)
        seen["WAL pages"] = max(0, size - WAL_HEADER) // (FRAME_HEADER + page_size)


class TimedConnection(sqlite3.Connection):
    """A connection that reports the CPU time of its statement calls to ``meter``: the
    statements' own cost, COMMIT's sync to disk included."""

    meter: SqliteMeter | None = None  # set once opened; None: not measured

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        began = time.thread_time()
        try:
            return super().execute(sql, parameters)
        finally:
            self._add(sql, began)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        began = time.thread_time()
        try:
            return super().executemany(sql, parameters)
        finally:
            self._add(sql, began)

    def _add(self, sql: str, began: float) -> None:
        if self.meter is not None:
            self.meter.spend(sql, int((time.thread_time() - began) * 1e6))


class TracedSqliteStore(SqliteStore):
    """A SqliteStore whose every connection reports its statements, and the CPU time
    they take, to ``meter``."""

    def __init__(self, meter: SqliteMeter) -> None:
        self._meter = meter  # before the schema's connection is opened
        super().__init__(meter.path)

    def _connect(self) -> sqlite3.Connection:
        # The store opens its connections with sqlite3.connect (sqlite_wal.connect_wal).
        timed = functools.partial(CONNECT, factory=TimedConnection)
        with mock.patch.object(sqlite3, "connect", timed):
            conn = super()._connect()
        assert isinstance(conn, TimedConnection)
        conn.meter = self._meter
        conn.set_trace_callback(self._meter.trace)
        return conn


class Meter(Protocol):
    def measuring(self) -> AbstractContextManager[Counter[str]]: ...


@dataclass(frozen=True)
class Row:
    operation: str
    runs: tuple[Counter[str], ...]
    cpu_ms: float  # median client CPU of one run

    def span(self, count: Callable[[Counter[str]], int]) -> str:
        """Fewest-most of ``count`` over the runs."""
        values = [count(kinds) for kinds in self.runs]
        low, high = min(values), max(values)
        return str(low) if low == high else f"{low}-{high}"

    def median_ms(self, kind: str) -> str:
        """The median over the runs of a CPU time counted in microseconds."""
        return f"{statistics.median(kinds[kind] for kinds in self.runs) / 1000:.2f}"


class Workload:
    """Fresh users and purchases, so that each run of an operation is a first run."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.tag = uuid.uuid4().hex[:8]
        self.n = 0

    def user(self, funded: int = 0) -> User:
        self.n += 1
        now = self.services.ledger.clock()
        user = User(id=f"{self.tag}-u{self.n}", created_at=format_time(now))
        user = self.services.store.ensure_user(user, now)
        if funded:
            self.services.ledger.credit(
                user.id, funded, key=f"{self.tag}-fund{self.n}", type=TxnType.GRANT
            )
        return user

    def checkout(self, buyer: User) -> dict[str, Any]:
        """A started checkout; returns its paid checkout.session.completed event."""
        self.n += 1
        purchase, session = self.services.checkout.start(buyer, PACK, f"{self.tag}-k{self.n}")
        paid = session_object(
            session.id, purchase.id, buyer.id, payment_intent=session.payment_intent
        )
        return event("checkout.session.completed", paid, event_id=f"evt_{self.tag}{self.n}")

    def embedded(self, buyer: User) -> dict[str, Any]:
        """A started embedded payment; returns its payment_intent.succeeded event."""
        self.n += 1
        purchase, intent = self.services.checkout.start_payment_intent(
            buyer, PACK, f"{self.tag}-e{self.n}"
        )
        succeeded = fixture(
            "payment_intent",
            id=intent.id,
            status="succeeded",
            amount=purchase.amount,
            amount_received=purchase.amount,
            currency=purchase.currency,
            metadata={"purchase_id": purchase.id, "user_id": purchase.user_id},
        )
        return event("payment_intent.succeeded", succeeded, event_id=f"evt_{self.tag}{self.n}")

    def debtor(self) -> User:
        """A buyer owing tokens: their next paid event repays the debt after the credit."""
        user = self.user(funded=10)
        self.services.ledger.clawback(
            user.id, 15, key=f"{self.tag}-owe{self.n}", type=TxnType.REFUND
        )
        return user


def operations(work: Workload) -> dict[str, Callable[[], Callable[[], object]]]:
    """Operation name -> set-up (not counted) returning the operation (counted)."""
    services = work.services

    def checkout() -> Callable[[], object]:
        buyer = work.user()
        return lambda: services.checkout.start(buyer, PACK, f"{work.tag}-c{uuid.uuid4().hex}")

    def returning_checkout() -> Callable[[], object]:
        # A buyer with a checkout before: their limit record and customer id exist.
        first = work.user()
        services.checkout.start(first, PACK, f"{work.tag}-c{uuid.uuid4().hex}")
        buyer = services.store.get_user(first.id) or first
        return lambda: services.checkout.start(buyer, PACK, f"{work.tag}-c{uuid.uuid4().hex}")

    def paid_event() -> Callable[[], object]:
        paid = work.checkout(work.user())
        return lambda: services.events.process(paid)

    def paid_intent() -> Callable[[], object]:
        paid = work.embedded(work.user())
        return lambda: services.events.process(paid)

    def paid_by_debtor() -> Callable[[], object]:
        paid = work.checkout(work.debtor())
        return lambda: services.events.process(paid)

    def redelivered() -> Callable[[], object]:
        paid = work.checkout(work.user())
        services.events.process(paid)
        return lambda: services.events.process(paid)

    def spend() -> Callable[[], object]:
        user = work.user(funded=100)
        return lambda: services.transfers.spend(user, 5, "bench", uuid.uuid4().hex)

    def transfer() -> Callable[[], object]:
        sender, recipient = work.user(funded=100), work.user()
        key = uuid.uuid4().hex
        return lambda: services.transfers.transfer(sender, recipient.id, 5, "bench", key)

    def hold() -> Callable[[], object]:
        user = work.user(funded=100)
        return lambda: services.ledger.hold(user.id, 5, key=uuid.uuid4().hex, ttl_s=60)

    def balance() -> Callable[[], object]:
        user = work.user(funded=100)
        return lambda: services.ledger.balance(user.id)

    def history() -> Callable[[], object]:
        user = work.user(funded=100)
        return lambda: services.ledger.history(user.id)

    return {
        "paid checkout.session.completed": paid_event,
        "paid payment_intent.succeeded (embedded)": paid_intent,
        "paid event, buyer in debt (repaid after the commit)": paid_by_debtor,
        "redelivered processed event": redelivered,
        "spend": spend,
        "transfer (tip)": transfer,
        "hold": hold,
        "checkout creation": checkout,
        "checkout creation, returning buyer": returning_checkout,
        "balance read": balance,
        "history page": history,
    }


def measure(services: Services, meter: Meter, repeat: int) -> list[Row]:
    work = Workload(services)
    rows = []
    for name, prepare in operations(work).items():
        runs: list[Counter[str]] = []
        cpu_s: list[float] = []
        for _ in range(repeat):
            operation = prepare()
            with meter.measuring() as kinds:
                began = time.process_time()
                operation()
                cpu_s.append(time.process_time() - began)
            runs.append(kinds)
        rows.append(Row(name, tuple(runs), statistics.median(cpu_s) * 1000))
    return rows


def _services(store: Any, tmp: str, env: dict[str, str]) -> Services:
    """The composition root's services on ``store``; the payment sandbox keeps its file in
    ``tmp`` and sends no webhooks."""
    sandbox = {"SANDBOX_DB_PATH": f"{tmp}/sandbox.db", "SANDBOX_WEBHOOKS": "off"}
    with mock.patch.object(container, "open_store", return_value=store):
        return build_services(load_settings({**env, **sandbox}))


def run(repeat: int) -> list[Row]:
    counter = RpcCounter()
    with emulator() as emu, tempfile.TemporaryDirectory(prefix="rpc-bench-") as tmp:
        emu.clear(PROJECT)
        store = FirestoreStore(PROJECT, client=open_client(PROJECT, counter))
        env = {"STORE_URL": f"firestore://{PROJECT}", "FIRESTORE_EMULATOR_HOST": emu.host}
        try:
            return measure(_services(store, tmp, env), counter, repeat)
        finally:
            store.close()


def run_sqlite(repeat: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="rpc-bench-") as tmp:
        meter = SqliteMeter(f"{tmp}/ledger.db")
        store = TracedSqliteStore(meter)
        env = {"STORE_URL": f"sqlite:///{meter.path}"}
        try:
            return measure(_services(store, tmp, env), meter, repeat)
        finally:
            store.close()


def table(rows: list[Row], repeat: int) -> str:
    head = "| operation | RPCs | client CPU ms | " + " | ".join(KINDS) + " | other |"
    lines = [head, "|---|" + "---:|" * (len(KINDS) + 3)]
    for row in rows:
        kinds = row.runs[-1]
        other = sum(v for k, v in kinds.items() if k not in KINDS)
        cells = [str(kinds.get(kind, 0)) for kind in KINDS]
        lines.append(
            f"| {row.operation} | {row.span(lambda k: sum(k.values()))} | {row.cpu_ms:.2f} | "
            + " | ".join(cells)
            + f" | {other} |"
        )
    note = (
        f"Firestore RPCs per operation on the emulator, counted by a gRPC client "
        f"interceptor; {repeat} runs each on fresh keys (RPCs: fewest-most; the kinds "
        "are the last run's). Client CPU ms: the median CPU time of this process over one "
        "run, gRPC's threads included and the emulator's not; operations run one at a time, "
        "in process (no HTTP). Set-up (users, funding, the checkout before an event) is "
        "not counted."
    )
    return "\n".join([note, "", *lines])


def sqlite_table(rows: list[Row], repeat: int) -> str:
    spent = ("in statements", "of which COMMIT")
    head = "| operation | " + " | ".join(SQLITE_COLUMNS) + " | CPU ms | " + " | ".join(spent)
    lines = [head + " |", "|---|" + "---:|" * (len(SQLITE_COLUMNS) + 3)]
    for row in rows:
        cells = [row.span(itemgetter(name)) for name in SQLITE_COLUMNS]
        cells += [f"{row.cpu_ms:.2f}", row.median_ms(STATEMENT_US), row.median_ms(COMMIT_US)]
        lines.append(f"| {row.operation} | " + " | ".join(cells) + " |")
    note = (
        f"The same operations on SQLite (`synchronous=FULL`), {repeat} runs each on fresh "
        "keys (fewest-most): write transactions, statements run on the store's connections "
        "(a trace callback on each), and pages the commits wrote to the WAL (emptied "
        "before each run). CPU ms: the median CPU time of this process over one run, in "
        "process (no HTTP); set-up is not counted. In statements: the median CPU time of "
        "that run spent inside the connections' statement calls, and of that, in COMMIT "
        "(its sync of the WAL to disk)."
    )
    return "\n".join([note, "", *lines])


def report(text: str, title: str, markers: tuple[str, str], write: Path | None) -> None:
    """Print ``text``; with ``write``, replace its section there."""
    print(text)
    if write:
        start, end = markers
        write_section(write, f"{start}\n{title}\n\n{context_line()}\n\n{text}\n{end}", start, end)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("firestore", "sqlite", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    if args.store in ("firestore", "all"):
        text = table(run(args.repeat), args.repeat)
        report(text, "## Firestore RPCs per operation", (START, END), args.write)
    if args.store in ("sqlite", "all"):
        text = sqlite_table(run_sqlite(args.repeat), args.repeat)
        title = "## SQLite transactions, statements and WAL pages per operation"
        report(text, title, (SQLITE_START, SQLITE_END), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
