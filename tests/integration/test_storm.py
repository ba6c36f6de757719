"""A webhook storm: every event sent 1-5 times, shuffled, from 32 senders, mixed with
spends and tips, ends exactly where the same events and requests sent once, in order, end.

Two apps start from the same users and checkouts (dev sign-in and Idempotency-Keys
make the same user, purchase and session ids in both). App A takes the storm; app B,
the oracle, takes each event once in its natural order and each spend and tip once.
Then every account (balance, debt, status, and its entries as (type, amount)), every
purchase's state, and `tokens reconcile` must agree. A 5xx is retried, as Stripe and
clients do; any other non-2xx answer fails the test.

On Firestore, app A runs as ``STORM_FIRESTORE_PROCESSES`` (default 2) gunicorn
servers on one emulator, as Cloud Run runs several instances on one database: each
has its own worker, Firestore client and in-process locks, so only the store's
transactions can keep the ledger right. Checkouts, spends and tips go to the servers
in turn, consecutive copies of one event go to different servers, and half of the
events sent more than once send all their copies at the same moment (one thread each,
released together), each copy to another server. On SQLite app A is one server
(``STORM_SQLITE_PROCESSES``, default 1). The oracle is always one server.

It runs on SQLite with ``STORM_DELIVERIES`` deliveries (default 10,000) and on the
Firestore emulator with ``STORM_FIRESTORE_DELIVERIES`` (default 1,000: each delivery
there waits on the emulator's round trips); `make soak` runs larger ones.
``STORM_SEED`` picks another shuffle, other duplicates and other requests.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import requests

from tests.support.limits import LOAD_LIMITS
from tests.support.purchases import (
    Buyer,
    charge_event,
    dispute_event,
    event,
    send,
    session_object,
)
from tests.support.server import AppServer, tokens_cli

DELIVERIES = {
    "sqlite": int(os.environ.get("STORM_DELIVERIES", "10000")),
    "firestore": int(os.environ.get("STORM_FIRESTORE_DELIVERIES", "1000")),
}
PROCESSES = {  # app A's server processes, all on one database
    "sqlite": int(os.environ.get("STORM_SQLITE_PROCESSES", "1")),
    "firestore": int(os.environ.get("STORM_FIRESTORE_PROCESSES", "2")),
}
BURST_SHARE = 0.5  # of the events sent more than once: all copies at the same moment
BURST_WAIT_S = 60.0
# The emulator makes concurrent checkouts of different buyers, whose transactions
# query the purchases collection, wait out each other's locks: start them one by one.
CHECKOUT_THREADS = {"sqlite": 8, "firestore": 1}
SENDERS = 32
SPENDERS = 16
SPENDER_OPS = 20
PURCHASES_PER_BUYER = 5  # the hourly purchase limit
SEED = int(os.environ.get("STORM_SEED", "20261124"))
MAX_ATTEMPTS = 20
EVENTS_PER_SCENARIO = 2  # the mean over the scenarios, for sizing
OPERATOR = "storm-ops@example.com"
PURCHASE_FIELDS = (
    "state",
    "credit_txn_id",
    "refunded_amount",
    "refunded_tokens",
    "dispute_status",
    "disputed_tokens",
)
APP_ENV = {
    "SANDBOX_WEBHOOKS": "off",
    "SIGNUP_BONUS": "100",
    "OPERATOR_EMAILS": OPERATOR,
    **LOAD_LIMITS,
}


@dataclass(frozen=True)
class Purchase:
    buyer_email: str
    key: str
    package: str = "popular"


@dataclass
class Tally:
    deliveries: int = 0
    retried: int = 0
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def scenario_events(index: int, started: dict[str, Any], user_id: str) -> list[dict[str, Any]]:
    """The events of one purchase, in the order Stripe would send them."""
    session_id, purchase_id = started["session_id"], started["purchase_id"]
    paid = session_object(session_id, purchase_id, user_id)
    unpaid = session_object(session_id, purchase_id, user_id, payment_status="unpaid")
    intent = paid["payment_intent"]
    scenarios: list[list[tuple[str, dict[str, Any]]]] = [
        [("checkout.session.completed", paid)],
        [
            ("checkout.session.completed", paid),
            ("charge.refunded", charge_event(intent, 999, 500)["data"]["object"]),
            ("charge.refunded", charge_event(intent, 999, 999)["data"]["object"]),
        ],
        [
            ("checkout.session.completed", unpaid),
            ("checkout.session.async_payment_succeeded", paid),
        ],
        [
            ("checkout.session.completed", unpaid),
            ("checkout.session.async_payment_failed", unpaid),
        ],
        [("checkout.session.expired", {**unpaid, "status": "expired"})],
        [
            ("checkout.session.completed", paid),
            (
                "charge.dispute.created",
                dispute_event("created", intent, 999, "needs_response")["data"]["object"],
            ),
            (
                "charge.dispute.closed",
                dispute_event("closed", intent, 999, "won")["data"]["object"],
            ),
        ],
    ]
    kinds = scenarios[index % len(scenarios)]
    return [event(kind, obj, f"evt_storm_{purchase_id}_{n}") for n, (kind, obj) in enumerate(kinds)]


class World:
    """The users and checkouts of one app, made the same way in both."""

    def __init__(self, server: AppServer, buyers: int) -> None:
        self.server = server
        emails = [f"storm-buyer-{n}@example.com" for n in range(buyers)]
        with ThreadPoolExecutor(8) as pool:
            signed_in = list(pool.map(lambda email: Buyer(server.url, email), emails))
        self.clients = dict(zip(emails, signed_in, strict=True))
        self.operator = Buyer(server.url, OPERATOR)
        self.spenders = [
            Buyer(server.url, f"storm-spender-{n}@example.com", f"spender{n}")
            for n in range(SPENDERS)
        ]

    def checkouts(self, purchases: list[Purchase], threads: int) -> list[dict[str, Any]]:
        def start(n: int, p: Purchase) -> dict[str, Any]:
            client = self.clients[p.buyer_email]
            answer = client.post(
                "/api/tokens/create-checkout-session",
                via=self.server.url_for(n),
                json={"package": p.package},
                headers={"Idempotency-Key": p.key},
            )
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return {**body, "user_id": client.user_id, "email": p.buyer_email}

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(start, range(len(purchases)), purchases))


LedgerRequest = tuple[int, str, dict[str, Any]]  # (spender index, path, body)


def ledger_requests(rng: random.Random) -> list[LedgerRequest]:
    """Spends and tips among the spenders: never more than one holds, so order cannot matter."""
    made: list[LedgerRequest] = []
    for n in range(SPENDERS * SPENDER_OPS):
        who = n % SPENDERS
        if rng.random() < 0.5:
            made.append(
                (who, "/api/tokens/spend", {"amount": rng.randint(1, 3), "reason": "storm"})
            )
        else:
            other = (who + rng.randint(1, SPENDERS - 1)) % SPENDERS
            body = {"recipient": f"spender{other}", "amount": rng.randint(1, 3)}
            made.append((who, "/api/tokens/transfer", body))
    return made


def until_2xx(call: Callable[[], requests.Response], tally: Tally, what: str) -> None:
    for attempt in range(MAX_ATTEMPTS):
        try:
            answer = call()
        except requests.RequestException:
            answer = None
        if answer is not None and answer.status_code < 300:
            with tally.lock:
                tally.deliveries += 1
                tally.retried += attempt > 0
            return
        if answer is not None and answer.status_code < 500:
            with tally.lock:
                tally.refused.append(f"{what}: {answer.status_code} {answer.text[:200]}")
            return
    with tally.lock:
        tally.refused.append(f"{what}: no 2xx after {MAX_ATTEMPTS} attempts")


def burst(calls: list[Callable[[], requests.Response]], tally: Tally, what: str) -> None:
    """Every copy of one event at the same moment: a thread each, released together."""
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[[], requests.Response]) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # a late thread sends anyway
            barrier.wait(timeout=BURST_WAIT_S)
        until_2xx(call, tally, what)

    threads = [threading.Thread(target=one, args=(call,), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def ledger_call(
    world: World, who: int, path: str, body: dict[str, Any], key: str, via: str | None = None
) -> Callable[[], requests.Response]:
    client = world.spenders[who]
    return lambda: client.post(path, via=via, json=body, headers={"Idempotency-Key": key})


def snapshot(world: World, started: list[dict[str, Any]]) -> dict[str, Any]:
    """Every account and purchase as the API shows them (ids are the same in both apps).

    Out of order, the same events may take a different path to the same end: a
    full refund seen before the half one is one entry, not two, and a dispute
    closed as won before it opened takes nothing. So entries are compared by
    what must not differ: one credit per paid purchase, and their sum.
    """
    accounts = {}
    for client in [*world.clients.values(), *world.spenders]:
        balance = client.get("/api/tokens/balance").json()
        entries = history(client)
        credits = Counter(t["amount"] for t in entries if t["type"] == "purchase")
        assert sum(t["amount"] for t in entries) == balance["balance"], client.user_id
        accounts[client.user_id] = (balance["balance"], balance["debt"], balance["status"], credits)
    purchases = {}
    for s in started:
        shown = world.operator.get(f"/admin/api/purchases/{s['purchase_id']}").json()["purchase"]
        purchases[s["purchase_id"]] = {key: shown[key] for key in PURCHASE_FIELDS}
    return {"accounts": accounts, "purchases": purchases}


def history(client: Buyer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = client.get(f"/api/tokens/transactions?limit=100&cursor={cursor}").json()
        items.extend(page["transactions"])
        cursor = page["next_cursor"] or ""
        if not cursor:
            return items


def app_on(kind: str, processes: int = 1) -> AppServer:
    """The app on its own database; the sandbox must not send events: the test is Stripe."""
    env = dict(APP_ENV)
    if kind == "firestore":
        env["STORE_URL"] = f"firestore://demo-storm-{uuid.uuid4().hex[:12]}"
    return AppServer(env, processes=processes).start()


@pytest.fixture
def storm_app(store_kind: str) -> Iterator[AppServer]:
    server = app_on(store_kind, PROCESSES[store_kind])
    yield server
    server.stop()


@pytest.fixture
def oracle_app(store_kind: str) -> Iterator[AppServer]:
    server = app_on(store_kind)
    yield server
    server.stop()


def test_a_storm_ends_where_the_same_events_in_order_end(
    storm_app: AppServer, oracle_app: AppServer, store_kind: str
) -> None:
    size = DELIVERIES[store_kind]
    rng = random.Random(SEED)
    copies = [rng.randint(1, 5) for _ in range(size)]  # more than enough
    purchase_count = max(6, size // (3 * EVENTS_PER_SCENARIO))
    buyers = -(-purchase_count // PURCHASES_PER_BUYER)
    plan = [
        Purchase(f"storm-buyer-{n // PURCHASES_PER_BUYER}@example.com", f"storm-{n}")
        for n in range(purchase_count)
    ]
    worlds = {
        name: World(app, buyers) for name, app in (("storm", storm_app), ("oracle", oracle_app))
    }
    threads = CHECKOUT_THREADS[store_kind]
    started = {name: world.checkouts(plan, threads) for name, world in worlds.items()}
    assert [s["purchase_id"] for s in started["storm"]] == [
        s["purchase_id"] for s in started["oracle"]
    ]  # the same ids in both apps, so their end states compare one to one
    unique = [
        e for n, s in enumerate(started["storm"]) for e in scenario_events(n, s, s["user_id"])
    ]
    requests_made = ledger_requests(rng)

    # The storm: each event 1-5 times, all shuffled with the spends and tips, 32 senders,
    # spread over app A's server processes; some events' copies all at once.
    storm_world, oracle_world = worlds["storm"], worlds["oracle"]
    tally = Tally()
    work: list[Callable[[], None]] = []
    deliveries = 0
    for n, e in enumerate(unique):
        calls: list[Callable[[], requests.Response]] = [
            partial(send, storm_app.url_for(n + c), e) for c in range(copies[n])
        ]
        deliveries += len(calls)
        if len(calls) > 1 and rng.random() < BURST_SHARE:
            work.append(partial(burst, calls, tally, str(e["id"])))
        else:
            work += [partial(until_2xx, call, tally, str(e["id"])) for call in calls]
    work += [
        partial(
            until_2xx,
            ledger_call(storm_world, who, path, body, f"storm-op-{n}", via=storm_app.url_for(n)),
            tally,
            f"op {n}",
        )
        for n, (who, path, body) in enumerate(requests_made)
    ]
    rng.shuffle(work)
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(lambda item: item(), work))
    assert tally.refused == []
    assert tally.deliveries == deliveries + len(requests_made)

    # The oracle: each event once, in order, then each spend and tip once.
    oracle_tally = Tally()
    for e in unique:
        until_2xx(partial(send, oracle_app.url, e), oracle_tally, str(e["id"]))
    for n, (who, path, body) in enumerate(requests_made):
        call = ledger_call(oracle_world, who, path, body, f"storm-op-{n}")
        until_2xx(call, oracle_tally, f"op {n}")
    assert oracle_tally.refused == []

    storm_end = snapshot(storm_world, started["storm"])
    oracle_end = snapshot(oracle_world, started["oracle"])
    differing = {
        key: (storm_end["accounts"][key], oracle_end["accounts"].get(key))
        for key in storm_end["accounts"]
        if storm_end["accounts"][key] != oracle_end["accounts"].get(key)
    }
    wrong_purchases = {
        key: (value, oracle_end["purchases"][key])
        for key, value in storm_end["purchases"].items()
        if value != oracle_end["purchases"][key]
    }
    assert wrong_purchases == {}, "\n".join(f"{k}: {v}" for k, v in wrong_purchases.items())
    assert differing == {}
    assert {p["state"] for p in storm_end["purchases"].values()} >= {"paid", "failed", "expired"}
    for app in (storm_app, oracle_app):
        reconciled = tokens_cli(app.env, "reconcile", "--no-provider")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    print(
        f"storm on {store_kind} ({len(storm_app.urls)} server process(es)): {deliveries}"
        f" deliveries of {len(unique)} events, {len(requests_made)} spends and tips,"
        f" {tally.retried} answered after a retry"
    )
