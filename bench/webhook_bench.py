"""Throughput and latency of signed Stripe webhooks against the app under gunicorn.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.webhook_bench [--store sqlite|firestore|all]
[--events N] [--concurrency 16] [--write docs/benchmarks.md]``.

A benchmark, not a test: it prints tables and asserts no timings; it exits with 1 when a
buyer's balance is not exactly what their purchases paid for. Per store, on one gunicorn
server (tests/support/server.py: 1 worker, 4 threads):

* set-up, untimed: buyers sign in and start N checkouts of the popular pack through the
  API (at most 5 per buyer, the hourly purchase limit), and N distinct paid
  ``checkout.session.completed`` events are built and serialised;
* events: the N events, signed just before, sent at the given concurrency;
* healthz: N ``/healthz`` requests at the same concurrency, the baseline cost of a request;
* every buyer's balance is then read through the API and must be 110 per purchase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.ledger_bench import HEADER, context_line, emulator, percentile
from config.settings import DEV_WEBHOOK_SECRET
from services.payments.signature import sign
from tests.support.purchases import Buyer, event, session_object
from tests.support.server import AppServer

START, END = "<!-- webhook_bench:start -->", "<!-- webhook_bench:end -->"
PACK, PACK_TOKENS = "popular", 110
PER_BUYER = 5  # checkouts one user may start per hour
DEFAULT_EVENTS = {"sqlite": 1000, "firestore": 200}
STORE_URLS = {"firestore": "firestore://demo-bench"}  # SQLite: AppServer's temp file
TARGET_RATIO, TARGET_P99_MS = 0.5, 250.0
# Concurrent checkouts of different buyers collide on the Firestore emulator (each one
# queries the buyer's recent purchases inside its transaction): set them up one at a time.
SETUP_CONCURRENCY = {"firestore": 1}
TIMEOUT_S = 60

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

    @property
    def client_cpu_ms(self) -> float:
        count = len(self.latencies_ms) + self.errors
        return self.client_cpu_s * 1000 / count if count else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


@dataclass(frozen=True)
class Result:
    store: str
    events: int
    concurrency: int
    webhook: Timing
    healthz: Timing
    balances_exact: bool

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


def run_clients(call: Call, count: int, concurrency: int, server_pid: int) -> Timing:
    """``call(session, i)`` for i < count on ``concurrency`` threads, one Session each."""
    barrier = threading.Barrier(concurrency + 1)
    outs: list[list[float]] = [[] for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_client, args=(call, range(t, count, concurrency), barrier, out))
        for t, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    cpu_before, client_before = process_cpu_s(server_pid), time.process_time()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = process_cpu_s(server_pid) - cpu_before if cpu_before else None
    client = time.process_time() - client_before
    every = [ms for out in outs for ms in out]
    ok = [ms for ms in every if ms >= 0]
    return Timing(elapsed, ok, len(every) - len(ok), cpu, client)


def server_pid(server: AppServer) -> int:
    return server.process.pid if server.process is not None else 0


def send_events(server: AppServer, bodies: list[bytes], concurrency: int) -> Timing:
    headers = signed(bodies)
    target = f"{server.url}/api/stripe/webhook"

    def post(http: requests.Session, i: int) -> int:
        return http.post(target, data=bodies[i], headers=headers[i], timeout=TIMEOUT_S).status_code

    return run_clients(post, len(bodies), concurrency, server_pid(server))


def hit_healthz(server: AppServer, count: int, concurrency: int) -> Timing:
    target = f"{server.url}/healthz"

    def get(http: requests.Session, _: int) -> int:
        return http.get(target, timeout=TIMEOUT_S).status_code

    return run_clients(get, count, concurrency, server_pid(server))


# -- checks ------------------------------------------------------------------------


def balances_exact(buyers: list[Buyer], orders: list[Order], concurrency: int) -> bool:
    """Every buyer holds exactly 110 tokens per purchase, read through the API."""
    expected = [0] * len(buyers)
    for order in orders:
        expected[order.buyer] += PACK_TOKENS
    with ThreadPoolExecutor(concurrency) as pool:
        actual = list(pool.map(lambda b: b.balance(), buyers))
    wrong = [(b.user_id, a, e) for b, a, e in zip(buyers, actual, expected, strict=True) if a != e]
    for user_id, got, want in wrong[:5]:
        print(f"  {user_id}: balance {got}, expected {want}", flush=True)
    return not wrong


# -- one store -------------------------------------------------------------------


@contextmanager
def app_server(store: str) -> Iterator[AppServer]:
    env = {"STORE_URL": STORE_URLS[store]} if store in STORE_URLS else {}
    server = AppServer(env).start()
    try:
        yield server
    finally:
        server.stop()


def bench_store(store: str, events: int, concurrency: int) -> Result:
    with app_server(store) as server:
        print(f"{store}: setting up {events} purchases ...", flush=True)
        began = time.perf_counter()
        setup = SETUP_CONCURRENCY.get(store, concurrency)
        buyers, orders = start_purchases(server.url, store, events, setup)
        bodies = [paid_body(o, buyers[o.buyer], i) for i, o in enumerate(orders)]
        print(f"{store}: set up in {time.perf_counter() - began:.1f} s; sending events", flush=True)
        webhook = send_events(server, bodies, concurrency)
        healthz = hit_healthz(server, events, concurrency)
        exact = balances_exact(buyers, orders, concurrency)
        for buyer in buyers:
            buyer.http.close()
    result = Result(store, events, concurrency, webhook, healthz, exact)
    print(table([result]) + "\n", flush=True)
    return result


def run_store(store: str, events: int | None, concurrency: int) -> Result:
    count = events or DEFAULT_EVENTS[store]
    if store != "firestore":
        return bench_store(store, count, concurrency)
    print("starting the Firestore emulator ...", flush=True)
    with emulator():
        return bench_store("firestore", count, concurrency)


# -- output ------------------------------------------------------------------------

COLUMNS = (
    "store",
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


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_row(r: Result) -> str:
    cells = [r.store, str(r.events), str(r.concurrency), f"{r.webhook.per_s:.1f}"]
    cells += [f"{r.webhook.p(0.5):.1f}", f"{r.webhook.p(0.99):.1f}", str(r.webhook.errors)]
    cells += [f"{r.healthz.per_s:.1f}", f"{r.healthz.p(0.5):.1f}", f"{r.ratio:.2f}"]
    cells += [ms(r.webhook.cpu_ms), ms(r.healthz.cpu_ms), "yes" if r.balances_exact else "no"]
    return "| " + " | ".join(cells) + " |"


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + [format_row(r) for r in results])


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def target_lines(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        note = "" if r.store == "sqlite" else " (the targets are for SQLite; for reference)"
        lines.append(
            f"- {r.store}: ratio {r.ratio:.2f} (target ≥ {TARGET_RATIO}): {verdict(r.ratio_met)};"
            f" p99 {r.webhook.p(0.99):.1f} ms (target < {TARGET_P99_MS:.0f} ms):"
            f" {verdict(r.p99_met)}; balances exact: {'yes' if r.balances_exact else 'no'}{note}"
        )
    return lines


def cost_sentence(r: Result, store: str) -> str:
    met = "meets" if r.ratio_met else "misses"
    head = (
        f"On {store} the webhook ran at {r.webhook.per_s:.0f} events/s against "
        f"{r.healthz.per_s:.0f} /healthz req/s, a ratio of {r.ratio:.2f}"
    )
    head += f", which {met} the target of {TARGET_RATIO}" if r.store == "sqlite" else ""
    event_cpu, health_cpu = r.webhook.cpu_ms, r.healthz.cpu_ms
    if event_cpu is None or health_cpu is None or r.webhook.server_cpu_s is None:
        return head + "."
    busy = r.webhook.server_cpu_s / r.webhook.seconds
    return head + (
        f"; the gunicorn worker spent {event_cpu:.2f} ms of CPU per event against "
        f"{health_cpu:.2f} ms per /healthz request and was busy {busy:.0%} of one core "
        f"while the events ran (one process: the GIL caps it near one core)."
    )


def latency_sentence(r: Result) -> str:
    """Little's law: with C requests always in flight, mean latency = C / throughput."""
    predicted = r.concurrency * 1000 / r.webhook.per_s if r.webhook.per_s else 0.0
    own = r.webhook.cpu_ms
    waiting = (
        f"; the event's own {own:.1f} ms of CPU is {own / r.webhook.mean_ms:.0%} of it"
        if (own is not None and r.webhook.mean_ms)
        else ""
    )
    p99 = f"{r.webhook.p(0.99):.0f} ms"
    p99 += (
        f" ({verdict(r.p99_met)}: target < {TARGET_P99_MS:.0f} ms)" if r.store == "sqlite" else ""
    )
    return (
        f"With {r.concurrency} requests in flight on 4 server threads, Little's law gives a mean "
        f"latency of {predicted:.0f} ms for that rate, and the measured mean is "
        f"{r.webhook.mean_ms:.0f} ms (p50 {r.webhook.p(0.5):.0f} ms, p99 {p99}){waiting}, "
        f"so latency follows from throughput: the rest is waiting for a thread, the GIL or the "
        f"store."
    )


def interpret(r: Result) -> str:
    store = "SQLite" if r.store == "sqlite" else "the Firestore emulator"
    return cost_sentence(r, store) + " " + latency_sentence(r)


def section(context: str, results: list[Result]) -> str:
    notes = (
        "events/s and healthz req/s count 2xx responses over wall-clock time; p50/p99 are "
        "latencies of 2xx webhook responses; errors are non-2xx webhook responses or failed "
        "requests. Client and server share the machine's CPUs."
    )
    parts = ["## Webhook throughput (`bench/webhook_bench.py`)", context, table(results), notes]
    parts.append("Targets on SQLite: events/s ÷ healthz req/s ≥ 0.5 and p99 < 250 ms.")
    parts.append("\n".join(target_lines(results)))
    parts.append(" ".join(interpret(r) for r in results))
    return f"{START}\n" + "\n\n".join(parts) + f"\n{END}"


def write_section(path: Path, text: str) -> None:
    """Replace the webhook_bench section of ``path`` (append it if absent)."""
    old = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "firestore", "all"), default="all")
    parser.add_argument("--events", type=int, help="events per store (1000 SQLite, 200 FS)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--write", type=Path, help="replace the webhook_bench section here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context = context_line()
    print(context, flush=True)
    stores = ("sqlite", "firestore") if args.store == "all" else (args.store,)
    results = [run_store(store, args.events, args.concurrency) for store in stores]
    print("\n" + table(results) + "\n\n" + "\n".join(target_lines(results)))
    print("\n" + "\n".join(interpret(r) for r in results))
    if args.write:
        write_section(args.write, section(context, results))
        print(f"\nwrote {args.write}")
    return 0 if all(r.balances_exact for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
