"""A steady load profile against the app under gunicorn: signed webhooks and API reads.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.load_bench [--store sqlite|firestore|all]
[--seconds 60] [--webhooks 50] [--reads 100] [--threads 64] [--warmup W]
[--write docs/benchmarks.md]``.

A benchmark, not a test: it prints tables and asserts no timings; it exits with 1 when the
ledger does not hold exactly what was paid. Per store, on one gunicorn server in sandbox
mode (bench/webhook_bench.py's app_server: 1 worker; 4 threads on SQLite, 8 on the
Firestore emulator):

* set-up, untimed: buyers sign in and start, through the API, the checkouts to be paid (at
  most 5 per buyer, the hourly purchase limit), and W more;
* warm-up, untimed: those W purchases paid by signed webhooks and W reads, 16 at a time, as
  the webhook bench does (bench/webhook_bench.py: the emulator, a JVM, runs its first
  thousands of requests far slower than the rest);
* webhooks, ``--webhooks`` a second: four in five are the first signed, paid
  ``checkout.session.completed`` of a purchase; every fifth repeats a purchase paid within
  the last second or so, alternately the same event again (a redelivery) or a new event
  for the same session (a second event), so some duplicates race their original;
* reads, ``--reads`` a second: balance, transactions and packages in turn, by the buyers;
* open loop: each request's send time is fixed before the run (i / rate) and a thread pool
  sends it then, however slow earlier answers are; latency runs from that scheduled time
  to the response, so time queued in the client and in the server's listen queue counts;
* afterwards, a purchase none of whose deliveries got a 2xx is sent once more, as Stripe
  would retry it; then every buyer must hold exactly 110 tokens per purchase, from exactly
  one purchase entry each.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.report import context_line, emulator, percentile, write_section
from bench.webhook_bench import (
    DEFAULT_WARMUP,
    PACK_TOKENS,
    Order,
    app_server,
    paid_body,
    pid_of,
    process_cpu_s,
    send_events,
    served_threads,
    start_purchases,
    this_code,
)
from tests.support.purchases import Buyer, event, session_object
from tests.support.webhooks import WEBHOOK_PATH, delivery

START, END = "<!-- load_bench:start -->", "<!-- load_bench:end -->"
FIRST, REDELIVERY, SECOND = "webhook: first", "webhook: redelivery", "webhook: second event"
BALANCE, HISTORY, PACKAGES = "read: balance", "read: transactions", "read: packages"
WEBHOOK_KINDS, READ_KINDS = (FIRST, REDELIVERY, SECOND), (BALANCE, HISTORY, PACKAGES)
READ_PATHS = {
    BALANCE: "/api/tokens/balance",
    HISTORY: "/api/tokens/transactions?limit=20",
    PACKAGES: "/api/tokens/packages",
}
DUPLICATE_EVERY = 5  # every 5th webhook repeats a recent purchase
RECENT = 50  # a duplicate picks one of the last 50 purchases sent (1 s at 50/s)
SETUP_CONCURRENCY = 16
TIMEOUT_S = 30
LEAD_S = 0.5  # between building the schedule and its first send
SEED = 7


@dataclass(frozen=True)
class Job:
    at: float  # seconds after the start of the schedule
    kind: str
    order: int  # the purchase a webhook pays, or the buyer who reads
    body: bytes = b""


@dataclass(frozen=True)
class Outcome:
    kind: str
    order: int
    ok: bool  # a 2xx response
    late_ms: float  # from the scheduled time to the moment a thread sent it
    latency_ms: float  # from the scheduled time to the response (or the failure)
    done_s: float  # when the response came, seconds after the start


# -- set-up --------------------------------------------------------------------------


def completed_body(order: Order, buyer: Buyer, event_id: str) -> bytes:
    obj = session_object(order.session_id, order.purchase_id, buyer.user_id)
    return json.dumps(event("checkout.session.completed", obj, event_id=event_id)).encode()


def webhook_jobs(orders: list[Order], buyers: list[Buyer], count: int, rate: float) -> list[Job]:
    """``count`` webhooks at ``rate``/s: first deliveries, and every 5th a duplicate."""
    rng = random.Random(SEED)
    jobs: list[Job] = []
    firsts: list[Job] = []
    for i in range(count):
        at = i / rate
        if i % DUPLICATE_EVERY != DUPLICATE_EVERY - 1 or not firsts:
            n = len(firsts)
            order = orders[n]
            body = completed_body(order, buyers[order.buyer], f"evt_load_{n:06d}")
            firsts.append(Job(at, FIRST, n, body))
            jobs.append(firsts[-1])
            continue
        original = rng.choice(firsts[-RECENT:])
        if (i // DUPLICATE_EVERY) % 2 == 0:
            jobs.append(Job(at, REDELIVERY, original.order, original.body))
        else:
            order = orders[original.order]
            again = f"evt_load_{original.order:06d}_again_{i}"
            body = completed_body(order, buyers[order.buyer], again)
            jobs.append(Job(at, SECOND, original.order, body))
    return jobs


def first_deliveries(count: int) -> int:
    """How many of ``count`` webhooks are first deliveries: the purchases to set up."""
    return count - count // DUPLICATE_EVERY


def read_jobs(buyers: int, count: int, rate: float) -> list[Job]:
    return [Job(i / rate, READ_KINDS[i % len(READ_KINDS)], i % buyers) for i in range(count)]


def warm_up(sender: Sender, buyers: list[Buyer], orders: list[Order]) -> int:
    """Untimed, closed loop: ``orders`` paid, and as many reads; returns the failures."""
    bodies = [paid_body(order, buyers[order.buyer], i) for i, order in enumerate(orders)]
    paid = send_events(sender.url, bodies, SETUP_CONCURRENCY, (0, 0))
    reads = read_jobs(len(buyers), len(orders), rate=1.0)
    with ThreadPoolExecutor(SETUP_CONCURRENCY) as pool:
        read = list(pool.map(sender.delivered, reads))
    return paid.errors + read.count(False)


# -- the run --------------------------------------------------------------------------


class Sender:
    """Sends jobs at their scheduled times on a thread pool, one HTTP session per thread."""

    def __init__(self, url: str, buyers: list[Buyer], threads: int) -> None:
        self.url = url
        self.cookies = [buyer.http.cookies.get_dict() for buyer in buyers]
        self.threads = threads
        self.local = threading.local()
        self.sessions: list[requests.Session] = []
        self.lock = threading.Lock()

    def http(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            with self.lock:
                self.sessions.append(session)
        return session

    def send(self, job: Job) -> requests.Response:
        if job.kind in WEBHOOK_KINDS:
            # Signed as it leaves, as Stripe signs each delivery attempt.
            body, headers = delivery(job.body, timestamp=int(time.time()))
            target = f"{self.url}{WEBHOOK_PATH}"
            return self.http().post(target, data=body, headers=headers, timeout=TIMEOUT_S)
        cookies = self.cookies[job.order] if job.kind != PACKAGES else None
        target = self.url + READ_PATHS[job.kind]
        return self.http().get(target, cookies=cookies, timeout=TIMEOUT_S)

    def delivered(self, job: Job) -> bool:
        try:
            return 200 <= self.send(job).status_code < 300
        except requests.RequestException:
            return False

    def timed(self, job: Job, origin: float) -> Outcome:
        sent = time.perf_counter()
        ok = self.delivered(job)
        done = time.perf_counter()
        scheduled = origin + job.at
        late_ms, latency_ms = (sent - scheduled) * 1000, (done - scheduled) * 1000
        return Outcome(job.kind, job.order, ok, late_ms, latency_ms, done - origin)

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Submit every job at its time, whether or not earlier ones have answered."""
        futures: list[Future[Outcome]] = []
        with ThreadPoolExecutor(self.threads) as pool:
            origin = time.perf_counter() + LEAD_S
            for job in jobs:
                delay = origin + job.at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)  # the schedule's clock, not a wait for a result
                futures.append(pool.submit(self.timed, job, origin))
            return [future.result() for future in futures]

    def close(self) -> None:
        for session in self.sessions:
            session.close()


# -- checks ---------------------------------------------------------------------------


def resend_unacknowledged(sender: Sender, jobs: list[Job], outcomes: list[Outcome]) -> int:
    """Send once more each purchase that no delivery got a 2xx for, as Stripe retries."""
    acknowledged = {o.order for o in outcomes if o.ok and o.kind in WEBHOOK_KINDS}
    firsts = {job.order: job for job in jobs if job.kind == FIRST}
    missing = [firsts[n] for n in sorted(firsts) if n not in acknowledged]
    for job in missing:
        for _ in range(3):
            if sender.delivered(job):
                break
    return len(missing)


@dataclass(frozen=True)
class LedgerCheck:
    buyers: int
    purchases: int
    wrong_balance: int
    wrong_credits: int  # buyers whose purchase entries are not one per purchase

    @property
    def ok(self) -> bool:
        return self.wrong_balance == 0 and self.wrong_credits == 0


def check_ledger(buyers: list[Buyer], orders: list[Order]) -> LedgerCheck:
    """Every buyer holds 110 tokens per purchase, from one purchase entry per purchase."""
    bought = [0] * len(buyers)
    for order in orders:
        bought[order.buyer] += 1

    def read(buyer: Buyer) -> tuple[int, int]:
        with buyer.http:  # closed afterwards: see webhook_bench.balance_of
            entries = buyer.get("/api/tokens/transactions?type=purchase&limit=100").json()
            return buyer.balance(), len(entries["transactions"])

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(read, buyers))
    wrong_balance = wrong_credits = 0
    for buyer, count, (balance, credits) in zip(buyers, bought, seen, strict=True):
        if balance != count * PACK_TOKENS or credits != count:
            print(f"  {buyer.user_id}: balance {balance}, {credits} credits; {count} bought")
        wrong_balance += balance != count * PACK_TOKENS
        wrong_credits += credits != count
    return LedgerCheck(len(buyers), len(orders), wrong_balance, wrong_credits)


# -- one store ------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    seconds: float
    webhooks_per_s: float
    reads_per_s: float
    threads: int
    warmup: int | None = None  # None: the store's default, DEFAULT_WARMUP

    def warm(self, store: str) -> int:
        """The untimed paid events (and reads) sent first to ``store``."""
        return DEFAULT_WARMUP[store] if self.warmup is None else self.warmup

    def rate(self, kind: str) -> float:
        if kind in READ_KINDS:
            return self.reads_per_s / len(READ_KINDS)
        duplicates = self.webhooks_per_s / DUPLICATE_EVERY
        return self.webhooks_per_s - duplicates if kind == FIRST else duplicates / 2


@dataclass(frozen=True)
class Run:
    store: str
    profile: Profile
    last_send_s: float  # the last scheduled send, seconds after the start
    outcomes: list[Outcome]
    server_cpu_s: float | None
    store_cpu_s: float | None
    client_cpu_s: float
    resent: int
    ledger: LedgerCheck

    @property
    def elapsed_s(self) -> float:
        """From the first scheduled send to the last response."""
        return max((o.done_s for o in self.outcomes), default=0.0)

    @property
    def drain_s(self) -> float:
        """How long after the last scheduled send the last response came."""
        return max(0.0, self.elapsed_s - self.last_send_s)

    def of(self, kinds: tuple[str, ...]) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in kinds]

    @property
    def errors(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def kept_up(self) -> bool:
        """No errors, and no backlog left when the schedule ended."""
        return self.errors == 0 and self.drain_s < 1.0


def bench_store(store: str, profile: Profile, store_pid: int = 0) -> Run:
    webhooks = round(profile.seconds * profile.webhooks_per_s)
    reads = round(profile.seconds * profile.reads_per_s)
    with app_server(store, this_code()) as server:
        server_pid = pid_of(server.process)
        purchases = first_deliveries(webhooks)
        warm = profile.warm(store)
        print(f"{store}: setting up {purchases} + {warm} purchases ...", flush=True)
        began = time.perf_counter()
        buyers, orders = start_purchases(
            server.url, f"load-{store}", purchases + warm, SETUP_CONCURRENCY
        )
        sender = Sender(server.url, buyers, profile.threads)
        print(f"{store}: set up in {time.perf_counter() - began:.1f} s; warming up", flush=True)
        failed = warm_up(sender, buyers, orders[purchases:])
        if failed:
            print(f"{store}: {failed} warm-up requests failed", flush=True)
        jobs = webhook_jobs(orders, buyers, webhooks, profile.webhooks_per_s)
        jobs += read_jobs(len(buyers), reads, profile.reads_per_s)
        jobs.sort(key=lambda job: job.at)
        print(f"{store}: sending {len(jobs)} requests over {profile.seconds:g} s", flush=True)
        server_before, store_before = process_cpu_s(server_pid), process_cpu_s(store_pid)
        client_before = time.process_time()
        outcomes = sender.run(jobs)
        client_cpu = time.process_time() - client_before
        server_cpu = process_cpu_s(server_pid) - server_before if server_pid else None
        store_cpu = process_cpu_s(store_pid) - store_before if store_pid else None
        resent = resend_unacknowledged(sender, jobs, outcomes)
        sender.close()
        ledger = check_ledger(buyers, orders)
    last = max(job.at for job in jobs)
    run = Run(store, profile, last, outcomes, server_cpu, store_cpu, client_cpu, resent, ledger)
    print(table([run]) + "\n", flush=True)
    return run


def run_store(store: str, profile: Profile) -> Run:
    if store != "firestore":
        return bench_store(store, profile)
    print("starting the Firestore emulator ...", flush=True)
    with emulator() as emu:
        return bench_store("firestore", profile, pid_of(emu.process))


# -- output -----------------------------------------------------------------------------

COLUMNS = (
    "store",
    "requests",
    "target /s",
    "sent",
    "2xx",
    "errors",
    "achieved /s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
)


def row(run: Run, label: str, kinds: tuple[str, ...]) -> str:
    done = run.of(kinds)
    ok = [o.latency_ms for o in done if o.ok]
    every = [o.latency_ms for o in done]
    target = sum(run.profile.rate(kind) for kind in kinds)
    achieved = len(ok) / run.elapsed_s if run.elapsed_s else 0.0
    cells = [run.store, label, f"{target:.4g}", str(len(done)), str(len(ok))]
    cells += [str(len(done) - len(ok)), f"{achieved:.1f}"]
    cells += [f"{percentile(every, f):.1f}" for f in (0.5, 0.95, 0.99)]
    cells.append(f"{max(every, default=0.0):.1f}")
    return "| " + " | ".join(cells) + " |"


def table(runs: list[Run]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        lines += [row(run, kind, (kind,)) for kind in WEBHOOK_KINDS]
        lines.append(row(run, "**all webhooks**", WEBHOOK_KINDS))
        lines += [row(run, kind, (kind,)) for kind in READ_KINDS]
        lines.append(row(run, "**all reads**", READ_KINDS))
    return "\n".join(lines)


def share(cpu_s: float | None, seconds: float) -> str:
    return "n/a" if cpu_s is None or seconds <= 0 else f"{cpu_s / seconds:.0%}"


def summary(run: Run) -> str:
    """One paragraph per store, every figure taken from the run."""
    hooks, reads = run.of(WEBHOOK_KINDS), run.of(READ_KINDS)
    hook_ms = [o.latency_ms for o in hooks]
    read_ms = [o.latency_ms for o in reads]
    late = [o.late_ms for o in run.outcomes]
    served = sum(o.ok for o in run.outcomes) / run.elapsed_s if run.elapsed_s else 0.0
    offered = run.profile.webhooks_per_s + run.profile.reads_per_s
    if run.kept_up:
        pace = (
            f"the last response came {run.drain_s * 1000:.0f} ms after the last scheduled send,"
            f" so the server kept up with the {offered:g} requests/s offered"
        )
    else:
        pace = (
            f"the server answered {served:.0f} requests/s with a 2xx against {offered:g}/s"
            f" offered and the last response came {run.drain_s:.1f} s after the last scheduled"
            f" send, so it did not keep up: requests queued and their latency grew with the queue"
        )
    emulator_ = (
        f" and the emulator {share(run.store_cpu_s, run.elapsed_s)}"
        if run.store_cpu_s is not None
        else ""
    )
    ledger = run.ledger
    return (
        f"**{run.store}**: after an untimed warm-up of {run.profile.warm(run.store)} paid "
        f"events and as many reads, {len(run.outcomes)} requests over "
        f"{run.profile.seconds:g} s; webhooks "
        f"p50 {percentile(hook_ms, 0.5):.0f} ms, p99 {percentile(hook_ms, 0.99):.0f} ms, reads "
        f"p50 {percentile(read_ms, 0.5):.0f} ms, p99 {percentile(read_ms, 0.99):.0f} ms, "
        f"{run.errors} errors; {pace}. The client sent each request a p99 of "
        f"{percentile(late, 0.99):.0f} ms after its scheduled time (threads busy or the CPU "
        f"shared). Over the run gunicorn's worker used {share(run.server_cpu_s, run.elapsed_s)}"
        f" of one core{emulator_}, and the client {share(run.client_cpu_s, run.elapsed_s)}. "
        f"{run.resent} purchases had no 2xx delivery and were sent once more after the run. "
        f"Ledger: {ledger.buyers} buyers, {ledger.purchases} purchases; "
        f"{ledger.wrong_balance} balances and {ledger.wrong_credits} credit counts differ from "
        f"110 tokens and one purchase entry per purchase: "
        f"{'consistent' if ledger.ok else 'NOT CONSISTENT'}."
    )


def threads_served(runs: list[Run]) -> str:
    """The server threads of each store the runs served."""
    return ", ".join(f"{served_threads(r.store, None)} threads on {r.store}" for r in runs)


def section(context: str, runs: list[Run]) -> str:
    profile = runs[0].profile
    notes = (
        f"Open loop: {profile.webhooks_per_s:g} signed webhooks/s and {profile.reads_per_s:g} "
        f"API reads/s for {profile.seconds:g} s, each request sent at its scheduled time from "
        f"a pool of {profile.threads} threads however slow earlier answers were, against one "
        f"gunicorn worker in sandbox mode ({threads_served(runs)}). Latency runs from the "
        "scheduled time to the response, so it includes time queued in the client and in the "
        "server's listen queue; percentiles cover every request, failed ones included. Four in "
        "five webhooks are the first `checkout.session.completed` of a purchase started through "
        "the API; the fifth repeats one of the last 50 purchases sent, alternately the same "
        "event again (redelivery) or a new event id for the same session (second event). Reads are "
        "`/api/tokens/balance`, `/api/tokens/transactions` and `/api/tokens/packages` in turn. "
        "errors are non-2xx responses and failed requests; achieved /s counts 2xx responses "
        "from the first scheduled send to the last response. Client, server and emulator share "
        "the machine's CPUs."
    )
    parts = ["## Load profile (`bench/load_bench.py`)", context, table(runs), notes]
    parts += [summary(run) for run in runs]
    return f"{START}\n" + "\n\n".join(parts) + f"\n{END}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "firestore", "all"), default="all")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the schedule")
    parser.add_argument("--webhooks", type=float, default=50.0, help="webhooks per second")
    parser.add_argument("--reads", type=float, default=100.0, help="API reads per second")
    parser.add_argument("--threads", type=int, default=64, help="the client's thread pool")
    parser.add_argument(
        "--warmup", type=int, help="untimed paid events and reads first (200 SQLite, 1000 FS)"
    )
    parser.add_argument("--write", type=Path, help="replace the load_bench section here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.webhooks <= 0 or args.reads <= 0 or args.threads < 1:
        parser.error("--seconds, --webhooks, --reads and --threads must be positive")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = Profile(args.seconds, args.webhooks, args.reads, args.threads, args.warmup)
    context = context_line()
    print(context, flush=True)
    stores = ("sqlite", "firestore") if args.store == "all" else (args.store,)
    runs = [run_store(store, profile) for store in stores]
    print("\n" + table(runs) + "\n\n" + "\n\n".join(summary(run) for run in runs))
    if args.write:
        write_section(args.write, section(context, runs), START, END)
        print(f"\nwrote {args.write}")
    return 0 if all(run.ledger.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
