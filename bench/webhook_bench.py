"""Throughput and latency of signed Stripe webhooks against the app under gunicorn.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.webhook_bench [--store sqlite|firestore|all]
[--events N] [--warmup W] [--concurrency 16] [--baseline [REV]] [--rounds R]
[--write docs/benchmarks.md]``.

A benchmark, not a test: it prints tables and asserts no timings; it exits with 1 when a
buyer's balance is not exactly what their purchases paid for. Per store, on one gunicorn
server (tests/support/server.py: 1 worker; 4 threads on SQLite, 8 on the Firestore
emulator, production's default), each on a fresh database (the emulator started anew
and warmed up by bench.report.emulator):

* set-up, untimed: buyers sign in and start W + N checkouts of the popular pack through
  the API (at most 5 per buyer, the hourly purchase limit), and W + N distinct paid
  ``checkout.session.completed`` events are built and serialised;
* warm-up, untimed: W of the events sent at the given concurrency. The emulator is a JVM
  that compiles its hot code only after thousands of requests, so an untimed run of the
  same requests first measures the steady state, which production's Firestore is in,
  rather than the emulator's start; the baseline gets the same warm-up;
* events: the other N events, signed just before, sent at the given concurrency;
* healthz: N ``/healthz`` requests at the same concurrency, the baseline cost of a request;
* every buyer's balance is then read through the API and must be 110 per purchase.

``--baseline REV`` (REV defaults to 28aa8a2, the commit before the Firestore work)
also serves commit REV, checked out with ``git worktree add --detach`` in a temporary
directory (with ``../shared`` beside it, as in this checkout) and removed afterwards,
under the same virtualenv, and runs the same workload against it in the same run: one
row per store for this checkout and one for the baseline, and a line saying whether
this checkout reaches 3x the baseline's events/s on the emulator with a p99 under
250 ms. The bench client, its events and its checks are this checkout's; the baseline
only serves.

``--threads N[,N...]`` serves with N threads instead (each count in turn, in every
round) and writes its own section, ``webhook_threads``: how much a request costs the
worker with fewer or more threads sharing its interpreter lock.

``--rounds R`` repeats the whole comparison R times per store, each run on a fresh
server and emulator, this checkout first in odd rounds and the baseline first in even
ones. One run's speed-up moves by a tenth or more from run to run on this machine, so
the target is judged per round, and the bench says in how many rounds it was met and
gives the median speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.report import context_line, emulator, percentile, write_section
from config.settings import DEV_WEBHOOK_SECRET
from services.payments.signature import sign
from tests.support.limits import LOAD_LIMITS
from tests.support.purchases import Buyer, event, session_object
from tests.support.server import ROOT, AppServer

START, END = "<!-- webhook_bench:start -->", "<!-- webhook_bench:end -->"
THREADS_START, THREADS_END = "<!-- webhook_threads:start -->", "<!-- webhook_threads:end -->"
PACK, PACK_TOKENS = "popular", 110
PER_BUYER = 5  # checkouts one user may start per hour
DEFAULT_EVENTS = {"sqlite": 5000, "firestore": 2000}
DEFAULT_WARMUP = {"sqlite": 200, "firestore": 1000}
STORE_URLS = {"firestore": "firestore://demo-bench"}  # SQLite: AppServer's temp file
TARGET_RATIO, TARGET_P99_MS = 0.5, 250.0
SERVER_THREADS = {"sqlite": 4, "firestore": 8}  # one gunicorn worker each
BASELINE_REV = "28aa8a2"
TARGET_SPEEDUP = 3.0  # this checkout's events/s on the emulator over the baseline's
# The baseline's concurrent checkouts of different buyers collide on the Firestore
# emulator (each queries the buyer's recent purchases inside its transaction): its
# purchases are set up one at a time. This checkout keeps the limits on a per-user
# document instead, and sets up at the run's concurrency.
BASELINE_SETUP_CONCURRENCY = {"firestore": 1}
TIMEOUT_S = 60
BUSY = 0.8  # a process this busy (share of one core) is what bounds the rate

Call = Callable[[requests.Session, int], int]


@dataclass(frozen=True)
class Order:
    """One started checkout: whose it is, and the ids Stripe's event will carry."""

    buyer: int
    session_id: str
    purchase_id: str


@dataclass(frozen=True)
class Timing:
    seconds: float
    latencies_ms: list[float]  # of 2xx responses
    errors: int  # non-2xx responses and failed requests
    server_cpu_s: float | None = None  # gunicorn's user + system CPU time over the run
    client_cpu_s: float = 0.0  # this process's CPU time over the run
    store_cpu_s: float | None = None  # the Firestore emulator's CPU time over the run

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def cpu_ms(self) -> float | None:
        """Server CPU per request, over every request sent."""
        count = len(self.latencies_ms) + self.errors
        return None if self.server_cpu_s is None or not count else self.server_cpu_s * 1000 / count

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


@dataclass(frozen=True)
class Code:
    """What the server runs: this checkout, or a baseline commit in a worktree."""

    label: str  # "this work" or "baseline"
    rev: str  # the short commit id
    root: Path  # the checkout gunicorn serves from

    @property
    def name(self) -> str:
        return f"{self.label} ({self.rev})"


@dataclass(frozen=True)
class Result:
    store: str
    events: int
    concurrency: int
    webhook: Timing
    healthz: Timing
    balances_exact: bool
    code: str = "this work"
    threads: int = 4
    warmup: int = 0
    round: int = 1

    @property
    def ratio(self) -> float:
        return self.webhook.per_s / self.healthz.per_s if self.healthz.per_s else 0.0

    @property
    def ratio_met(self) -> bool:
        return self.ratio >= TARGET_RATIO

    @property
    def p99_met(self) -> bool:
        return self.webhook.p(0.99) < TARGET_P99_MS


# -- set-up --------------------------------------------------------------------


def sign_in(url: str, store: str, index: int, count: int) -> tuple[Buyer, list[Order]]:
    buyer = Buyer(url, f"bench-{store}-{index:05d}@example.com")
    orders = []
    for _ in range(count):
        started = buyer.checkout(PACK)
        orders.append(Order(index, started["session_id"], started["purchase_id"]))
    # Its connection is closed (a later request opens another): a thousand buyers' idle
    # keep-alive connections made every request the server answered while they lasted
    # cost it a quarter more CPU (/healthz 0.57 ms against 0.46 ms).
    buyer.http.close()
    return buyer, orders


def start_purchases(
    url: str, store: str, events: int, concurrency: int
) -> tuple[list[Buyer], list[Order]]:
    """Buyers with at most PER_BUYER checkouts each, N checkouts in all.

    The orders come round-robin over the buyers, so requests in flight together are
    mostly for different buyers, as Stripe's deliveries would be.
    """
    counts = [min(PER_BUYER, events - start) for start in range(0, events, PER_BUYER)]
    with ThreadPoolExecutor(concurrency) as pool:
        made = list(pool.map(lambda i: sign_in(url, store, i, counts[i]), range(len(counts))))
    rounds = [[orders[k] for _, orders in made if k < len(orders)] for k in range(PER_BUYER)]
    return [buyer for buyer, _ in made], [order for batch in rounds for order in batch]


def paid_body(order: Order, buyer: Buyer, index: int) -> bytes:
    obj = session_object(order.session_id, order.purchase_id, buyer.user_id)
    body = event("checkout.session.completed", obj, event_id=f"evt_bench_{index:06d}")
    return json.dumps(body).encode()


def signed(bodies: list[bytes]) -> list[dict[str, str]]:
    """Stripe-Signature headers, made now: they hold for 300 s from their timestamp."""
    moment = int(time.time())
    return [
        {
            "Stripe-Signature": sign(body, DEV_WEBHOOK_SECRET, moment),
            "Content-Type": "application/json",
        }
        for body in bodies
    ]


# -- timed part ------------------------------------------------------------------


def _client(call: Call, indices: range, barrier: threading.Barrier, out: list[float]) -> None:
    """Run ``call`` for ``indices`` on one Session; 2xx latencies go to ``out``, -1 for errors."""
    with requests.Session() as http:
        barrier.wait()
        for i in indices:
            start = time.perf_counter()
            try:
                status = call(http, i)
            except requests.RequestException:
                status = 0
            elapsed_ms = (time.perf_counter() - start) * 1000
            out.append(elapsed_ms if 200 <= status < 300 else -1.0)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (Linux /proc), else 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu_s(int(child)) for child in children)


def cpu_since(pid: int, before: float) -> float | None:
    return process_cpu_s(pid) - before if pid and before else None


def run_clients(call: Call, count: int, concurrency: int, pids: tuple[int, int]) -> Timing:
    """``call(session, i)`` for i < count on ``concurrency`` threads, one Session each.

    ``pids`` are the server's and the emulator's (0: none), whose CPU time is measured.
    """
    barrier = threading.Barrier(concurrency + 1)
    outs: list[list[float]] = [[] for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_client, args=(call, range(t, count, concurrency), barrier, out))
        for t, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    server_before, store_before = (process_cpu_s(pid) for pid in pids)
    client_before = time.process_time()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    server = cpu_since(pids[0], server_before)
    client = time.process_time() - client_before
    store = cpu_since(pids[1], store_before)
    every = [ms for out in outs for ms in out]
    ok = [ms for ms in every if ms >= 0]
    return Timing(elapsed, ok, len(every) - len(ok), server, client, store)


def send_events(url: str, bodies: list[bytes], concurrency: int, pids: tuple[int, int]) -> Timing:
    headers = signed(bodies)
    target = f"{url}/api/stripe/webhook"

    def post(http: requests.Session, i: int) -> int:
        return http.post(target, data=bodies[i], headers=headers[i], timeout=TIMEOUT_S).status_code

    return run_clients(post, len(bodies), concurrency, pids)


def hit_healthz(url: str, count: int, concurrency: int, pids: tuple[int, int]) -> Timing:
    target = f"{url}/healthz"

    def get(http: requests.Session, _: int) -> int:
        return http.get(target, timeout=TIMEOUT_S).status_code

    return run_clients(get, count, concurrency, pids)


# -- checks ------------------------------------------------------------------------


def balance_of(buyer: Buyer) -> int:
    """The buyer's balance through the API, on a connection closed afterwards: a thousand
    left open would fill the server's 1,000 connections (gunicorn's worker_connections),
    and the next buyer's read would wait for one to time out."""
    with buyer.http:
        return buyer.balance()


def balances_exact(buyers: list[Buyer], orders: list[Order], concurrency: int) -> bool:
    """Every buyer holds exactly 110 tokens per purchase, read through the API."""
    expected = [0] * len(buyers)
    for order in orders:
        expected[order.buyer] += PACK_TOKENS
    with ThreadPoolExecutor(concurrency) as pool:
        actual = list(pool.map(balance_of, buyers))
    wrong = [(b.user_id, a, e) for b, a, e in zip(buyers, actual, expected, strict=True) if a != e]
    for user_id, got, want in wrong[:5]:
        print(f"  {user_id}: balance {got}, expected {want}", flush=True)
    return not wrong


# -- one store -------------------------------------------------------------------


def served_threads(store: str, threads: int | None) -> int:
    """``--threads``' count, else the store's default."""
    return threads or SERVER_THREADS[store]


@contextmanager
def app_server(store: str, code: Code, threads: int | None = None) -> Iterator[AppServer]:
    # A bench measures throughput, not the request limits: one address signs in every
    # buyer, so the limits are raised (they stay on; older code ignores the settings).
    env = {**LOAD_LIMITS, **({"STORE_URL": STORE_URLS[store]} if store in STORE_URLS else {})}
    if code.root != ROOT:
        # gunicorn puts its working directory first on sys.path; PYTHONPATH must not
        # bring this checkout's modules back in front of the baseline's.
        env["PYTHONPATH"] = str(code.root)
    server = AppServer(env, threads=served_threads(store, threads), root=code.root)
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(f"{code.name} could not be served on {store}: {exc}") from exc
    try:
        yield server
    finally:
        server.stop()


def pid_of(process: subprocess.Popen[bytes] | None) -> int:
    return process.pid if process is not None else 0


def bench_store(
    store: str,
    events: int,
    warmup: int,
    concurrency: int,
    code: Code,
    threads: int,
    store_pid: int = 0,
    round_: int = 1,
) -> Result:
    with app_server(store, code, threads) as server:
        pids = (pid_of(server.process), store_pid)
        print(f"{store}, {code.name}: setting up {warmup} + {events} purchases ...", flush=True)
        began = time.perf_counter()
        setup = concurrency
        if code.label == "baseline":
            setup = BASELINE_SETUP_CONCURRENCY.get(store, concurrency)
        buyers, orders = start_purchases(server.url, store, warmup + events, setup)
        bodies = [paid_body(o, buyers[o.buyer], i) for i, o in enumerate(orders)]
        print(f"{store}: set up in {time.perf_counter() - began:.1f} s; warming up", flush=True)
        warm = send_events(server.url, bodies[:warmup], concurrency, pids)
        if warm.errors:
            print(f"{store}: {warm.errors} warm-up events failed", flush=True)
        webhook = send_events(server.url, bodies[warmup:], concurrency, pids)
        healthz = hit_healthz(server.url, events, concurrency, pids)
        exact = balances_exact(buyers, orders, concurrency)
    result = Result(
        store, events, concurrency, webhook, healthz, exact, code.name, threads, warmup, round_
    )
    print(table([result]) + "\n", flush=True)
    return result


def run_store(
    store: str,
    events: int | None,
    warmup: int | None,
    concurrency: int,
    code: Code,
    round_: int = 1,
    threads: int | None = None,
) -> Result:
    count = events or DEFAULT_EVENTS[store]
    warm = DEFAULT_WARMUP[store] if warmup is None else warmup
    served = served_threads(store, threads)
    if store != "firestore":
        return bench_store(store, count, warm, concurrency, code, served, round_=round_)
    print("starting the Firestore emulator ...", flush=True)
    with emulator() as emu:
        pid = pid_of(emu.process)
        return bench_store("firestore", count, warm, concurrency, code, served, pid, round_)


# -- the baseline: another commit, served from a temporary worktree ---------------------


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def this_code() -> Code:
    try:
        rev = git("rev-parse", "--short", "HEAD")
    except SystemExit:
        rev = "uncommitted"
    return Code("this work", rev, ROOT)


@contextmanager
def baseline_checkout(rev: str) -> Iterator[Code]:
    """Commit ``rev`` in a detached worktree, removed afterwards; ``../shared`` (the
    shared fixtures, found next to the project's root) is linked beside it."""
    short = git("rev-parse", "--short", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="webhook-bench-baseline-") as parent:
        tree = Path(parent) / "main"
        shared = ROOT.parent / "shared"
        if shared.exists():
            (Path(parent) / "shared").symlink_to(shared, target_is_directory=True)
        git("worktree", "add", "--detach", str(tree), short)
        try:
            yield Code("baseline", short, tree)
        finally:
            git("worktree", "remove", "--force", str(tree))
            git("worktree", "prune")


# -- output ------------------------------------------------------------------------

COLUMNS = (
    "store",
    "code",
    "round",
    "server",
    "warm-up events",
    "events",
    "concurrency",
    "events/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "healthz req/s",
    "healthz p50 ms",
    "events/s ÷ healthz req/s",
    "server CPU ms/event",
    "server CPU ms/healthz",
    "balances exact",
)


def threads_text(count: int) -> str:
    return "1 thread" if count == 1 else f"{count} threads"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_row(r: Result) -> str:
    cells = [r.store, r.code, str(r.round), f"1 worker x {threads_text(r.threads)}", str(r.warmup)]
    cells += [str(r.events), str(r.concurrency), f"{r.webhook.per_s:.1f}"]
    cells += [f"{r.webhook.p(0.5):.1f}", f"{r.webhook.p(0.99):.1f}", str(r.webhook.errors)]
    cells += [f"{r.healthz.per_s:.1f}", f"{r.healthz.p(0.5):.1f}", f"{r.ratio:.2f}"]
    cells += [ms(r.webhook.cpu_ms), ms(r.healthz.cpu_ms), "yes" if r.balances_exact else "no"]
    return "| " + " | ".join(cells) + " |"


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + [format_row(r) for r in results])


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def baselines(results: list[Result]) -> list[Result]:
    return [r for r in results if r.code.startswith("baseline")]


def own(results: list[Result]) -> list[Result]:
    return [r for r in results if not r.code.startswith("baseline")]


def speedup_of(r: Result, base: Result) -> float:
    return r.webhook.per_s / base.webhook.per_s if base.webhook.per_s else 0.0


def target_met(r: Result, base: Result) -> bool:
    exact = r.balances_exact and base.balances_exact
    return speedup_of(r, base) >= TARGET_SPEEDUP and r.p99_met and exact


def pairs(results: list[Result]) -> list[tuple[Result, Result]]:
    """This checkout's row and the baseline's, per store, round and thread count."""
    return [
        (r, base)
        for base in baselines(results)
        for r in own(results)
        if (r.store, r.round, r.threads) == (base.store, base.round, base.threads)
    ]


def rounds_line(label: str, paired: list[tuple[Result, Result]]) -> str:
    speedups = [speedup_of(r, base) for r, base in paired]
    met = sum(target_met(r, base) for r, base in paired)
    listed = ", ".join(f"{x:.2f}x" for x in speedups)
    line = (
        f"- {label}, {len(paired)} rounds: speed-ups {listed};"
        f" median {statistics.median(speedups):.2f}x"
    )
    on_firestore = paired[0][0].store == "firestore"
    return line + (f"; target met in {met} of {len(paired)} rounds" if on_firestore else "")


def baseline_lines(results: list[Result]) -> list[str]:
    """Per store and round with a baseline row: the speed-up; on Firestore, the issue's
    target, and over several rounds the median and the rounds that met it."""
    lines = []
    for r, base in pairs(results):
        exact = r.balances_exact and base.balances_exact
        line = (
            f"- {named(r, results)}: {r.webhook.per_s:.1f} events/s against the {base.code}'s"
            f" {base.webhook.per_s:.1f} at 1 worker x {threads_text(r.threads)}:"
            f" {speedup_of(r, base):.2f}x; p99 {r.webhook.p(0.99):.1f} ms against"
            f" {base.webhook.p(0.99):.1f} ms; balances exact in both: {'yes' if exact else 'no'}"
        )
        if r.store == "firestore":
            line += (
                f". Target (≥ {TARGET_SPEEDUP:.0f}x the baseline's events/s, p99 <"
                f" {TARGET_P99_MS:.0f} ms, balances exact): {verdict(target_met(r, base))}"
            )
        lines.append(line)
    if _several(results):
        varied = _threads_vary(results)
        for store, threads in dict.fromkeys((r.store, r.threads) for r, _ in pairs(results)):
            paired = [p for p in pairs(results) if (p[0].store, p[0].threads) == (store, threads)]
            label = f"{store}, {threads_text(threads)}" if varied else store
            lines.append(rounds_line(label, paired))
    return lines


def _several(results: list[Result]) -> bool:
    return any(r.round > 1 for r in results)


def _threads_vary(results: list[Result]) -> bool:
    """Some store served with more than one thread count (``--threads``)."""
    return len({(r.store, r.threads) for r in results}) > len({r.store for r in results})


def named(r: Result, results: list[Result]) -> str:
    """The row's store, its round when there are several, and its threads when they vary."""
    name = f"{r.store}, round {r.round}" if _several(results) else r.store
    return f"{name}, {threads_text(r.threads)}" if _threads_vary(results) else name


def target_lines(results: list[Result]) -> list[str]:
    lines = []
    for r in own(results):
        note = "" if r.store == "sqlite" else " (the targets are for SQLite; for reference)"
        lines.append(
            f"- {named(r, results)}: ratio {r.ratio:.2f} (target ≥ {TARGET_RATIO}):"
            f" {verdict(r.ratio_met)};"
            f" p99 {r.webhook.p(0.99):.1f} ms (target < {TARGET_P99_MS:.0f} ms):"
            f" {verdict(r.p99_met)}; balances exact: {'yes' if r.balances_exact else 'no'}{note}"
        )
    return lines


def little_ms(r: Result) -> float:
    """Little's law: with C requests always in flight, mean latency = C / throughput."""
    return r.concurrency * 1000 / r.webhook.per_s if r.webhook.per_s else 0.0


def sqlite_sentence(r: Result) -> str:
    w = r.webhook
    cpu = w.cpu_ms if w.cpu_ms is not None else 0.0
    busy = share(w.server_cpu_s, w.seconds)
    doing = "waiting rather than computing" if cpu < w.mean_ms / 2 else "computing"
    return (
        f"On SQLite the webhook ran at {w.per_s:.0f} events/s, {r.ratio:.2f} of the "
        f"{r.healthz.per_s:.0f} /healthz req/s (target {TARGET_RATIO}: {verdict(r.ratio_met)}), "
        f"with the worker busy {busy:.0%} of one core at {cpu:.2f} ms of CPU per event against "
        f"{ms(r.healthz.cpu_ms)} ms per /healthz request, so an event spends most of its "
        f"{w.mean_ms:.0f} ms mean latency {doing}; Little's law gives {little_ms(r):.0f} ms for "
        f"{r.concurrency} requests in flight at that rate, and the p99 of {w.p(0.99):.0f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms: {verdict(r.p99_met)}) is the tail of that queue."
    )


def share(cpu_s: float | None, seconds: float) -> float:
    """CPU seconds as a share of one core over ``seconds`` of wall clock."""
    return cpu_s / seconds if cpu_s is not None and seconds > 0 else 0.0


def firestore_limit(worker: float, emulator_: float, used: float) -> str:
    """What bounds the rate, from the shares of one core each process used."""
    if worker >= BUSY:
        return (
            "so the worker's own CPU is the limit here: its threads share one interpreter "
            "lock, so one process computes on one core"
        )
    if emulator_ >= BUSY:
        return "so the emulator's own CPU is the limit here"
    if used >= 2 * BUSY:
        return "so the machine's two CPUs were nearly saturated"
    return "so the rest of each request's time is waiting on the emulator"


def firestore_sentence(r: Result) -> str:
    w = r.webhook
    worker, emulator_ = share(w.server_cpu_s, w.seconds), share(w.store_cpu_s, w.seconds)
    used = worker + emulator_ + share(w.client_cpu_s, w.seconds)
    per_event = w.store_cpu_s * 1000 / r.events if w.store_cpu_s is not None else 0.0
    return (
        f"On the Firestore emulator the rate falls to {w.per_s:.0f} events/s (ratio "
        f"{r.ratio:.2f}), p50 {w.p(0.5):.0f} ms and p99 {w.p(0.99):.0f} ms against "
        f"{little_ms(r):.0f} ms from Little's law; the worker was busy {worker:.0%} of one core "
        f"({ms(w.cpu_ms)} ms per event) and the emulator, a Java process on the same machine, "
        f"{emulator_:.0%} ({per_event:.1f} ms per event), "
        f"{firestore_limit(worker, emulator_, used)}."
    )


def client_sentence(results: list[Result]) -> str:
    shares = sorted(r.healthz.client_cpu_s / r.healthz.seconds for r in results)
    low, high = (shares[0], shares[-1]) if shares else (0.0, 0.0)
    used = f"{high:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%} to {high:.0%}"
    bound = "partly bounded by the client" if high >= 0.75 else "not bounded by the client"
    return (
        f"The benchmark client shares the machine's CPUs with the server and used {used} of one "
        f"core during the /healthz runs, so that baseline is {bound}."
    )


def interpretation(results: list[Result]) -> list[str]:
    firsts = [r for r in own(results) if r.round == 1]  # later rounds: the table has them
    texts = [sqlite_sentence(r) if r.store == "sqlite" else firestore_sentence(r) for r in firsts]
    return [*texts, client_sentence(results)]


def spread(values: list[float], digits: int) -> str:
    """Fewest-most, and the median when there are more than two."""
    low, high = (f"{x:.{digits}f}" for x in (min(values), max(values)))
    text = low if low == high else f"{low}-{high}"
    return text + (f" (median {statistics.median(values):.{digits}f})" if len(values) > 2 else "")


def thread_lines(results: list[Result]) -> list[str]:
    """Per store and thread count, over the rounds: rates, worker CPU, ratio and p99; then
    how busy the client was, which bounds /healthz as the threads get fewer."""
    lines = []
    for store, threads in dict.fromkeys((r.store, r.threads) for r in own(results)):
        rows = [r for r in own(results) if (r.store, r.threads) == (store, threads)]
        cpu = [r.webhook.cpu_ms or 0.0 for r in rows]
        healthz_cpu = [r.healthz.cpu_ms or 0.0 for r in rows]
        lines.append(
            f"- {store}, {threads_text(threads)}, {len(rows)} runs:"
            f" {spread([r.webhook.per_s for r in rows], 0)} events/s at"
            f" {spread(cpu, 2)} ms of worker CPU each;"
            f" /healthz {spread([r.healthz.per_s for r in rows], 0)} req/s at"
            f" {spread(healthz_cpu, 2)} ms; ratio {spread([r.ratio for r in rows], 2)};"
            f" p99 {spread([r.webhook.p(0.99) for r in rows], 0)} ms"
        )
    return [*lines, "", client_sentence(results)]


def markers(by_threads: bool) -> tuple[str, str]:
    """The comparison at the default threads has its section; a thread sweep its own."""
    return (THREADS_START, THREADS_END) if by_threads else (START, END)


def section(context: str, results: list[Result], by_threads: bool = False) -> str:
    notes = (
        "events/s and healthz req/s count 2xx responses over wall-clock time; p50/p99 are "
        "latencies of 2xx webhook responses; errors are non-2xx webhook responses or failed "
        "requests. Client and server share the machine's CPUs."
    )
    heading = "## Webhook throughput (`bench/webhook_bench.py`)"
    if by_threads:
        heading = "## Webhook throughput by server threads (`bench/webhook_bench.py --threads`)"
    parts = [heading, context, table(results), notes]
    parts.append("Targets on SQLite: events/s ÷ healthz req/s ≥ 0.5 and p99 < 250 ms.")
    parts.append("\n".join(target_lines(results)))
    if baselines(results):
        parts.append(
            f"Against the baseline, served from a git worktree in the same run; target on the"
            f" Firestore emulator: ≥ {TARGET_SPEEDUP:.0f}x the baseline's events/s with p99 <"
            f" {TARGET_P99_MS:.0f} ms."
        )
        parts.append("\n".join(baseline_lines(results)))
    if by_threads:
        parts.append("\n".join(thread_lines(results)))
    else:
        parts.append(" ".join(interpretation(results)))
    start, end = markers(by_threads)
    return f"{start}\n" + "\n\n".join(parts) + f"\n{end}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "firestore", "all"), default="all")
    parser.add_argument("--events", type=int, help="timed events per store (5000 SQLite, 2000 FS)")
    parser.add_argument(
        "--warmup", type=int, help="untimed events sent first (200 SQLite, 1000 Firestore)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--baseline",
        nargs="?",
        const=BASELINE_REV,
        metavar="REV",
        help=f"also serve commit REV (default {BASELINE_REV}) from a git worktree and compare",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the comparison, alternating which runs first"
    )
    parser.add_argument(
        "--threads",
        type=thread_counts,
        metavar="N[,N...]",
        help="serve with N threads (each count in turn) instead of 4 on SQLite, 8 on Firestore",
    )
    parser.add_argument(
        "--write",
        type=Path,
        help="replace the webhook_bench (with --threads: webhook_threads) section here",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def thread_counts(text: str) -> list[int]:
    """``--threads``: whole numbers of at least 1, separated by commas."""
    parts = text.split(",")
    if not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"expected whole numbers ≥ 1 such as 1,4; got {text!r}")
    return [int(part) for part in parts]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context = context_line()
    print(context, flush=True)
    stores = ("sqlite", "firestore") if args.store == "all" else (args.store,)
    with ExitStack() as stack:
        codes = [this_code()]
        if args.baseline:
            codes.append(stack.enter_context(baseline_checkout(args.baseline)))
        results = [
            run_store(store, args.events, args.warmup, args.concurrency, code, k, threads)
            for k in range(1, args.rounds + 1)
            for store in stores
            for threads in args.threads or [None]
            for code in (codes if k % 2 else codes[::-1])  # who runs first alternates
        ]
    results.sort(
        key=lambda r: (stores.index(r.store), r.round, r.threads, r.code.startswith("baseline"))
    )
    print("\n" + table(results) + "\n\n" + "\n".join(target_lines(results)))
    if baselines(results):
        print("\n" + "\n".join(baseline_lines(results)))
    summary = thread_lines(results) if args.threads else interpretation(results)
    print("\n" + "\n".join(summary))
    if args.write:
        by_threads = args.threads is not None
        start, end = markers(by_threads)
        write_section(args.write, section(context, results, by_threads), start, end)
        print(f"\nwrote {args.write}")
    return 0 if all(r.balances_exact for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
