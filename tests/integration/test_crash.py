"""Crash consistency: workers killed between the steps of one operation, and at random.

The app runs under gunicorn with the payment sandbox recording its events but
not delivering them (SANDBOX_WEBHOOKS=off): the test plays Stripe, delivering
the sandbox's own events, each retried until it gets an answer below 500, while
workers die. Purchases start through the API and are paid on the sandbox's
checkout form; refunds are made at the sandbox, as in Stripe's dashboard.
Spends and tips carry an Idempotency-Key and are retried the same way. Before
each step the whole server is stopped and started again with other faults
armed (TOKEN_STORE_FAULTS, hit numbers from a seeded generator; which points,
per store, in ``Profile``), and during it a killer SIGKILLs the worker from
outside at random moments (gunicorn starts a new one). A round of users goes
through three phases:

A. each user buys two packs, whose events arrive 1-2 times in shuffled order
   (step deliver); then the users spend and tip each other while duplicates
   keep arriving (step spend);
B. every user's larger purchase is refunded in two steps (cumulative
   ``charge.refunded`` events, 1-3 copies each, shuffled), and half the smaller
   ones in part, which leaves most users in debt (step refund);
C. every user in debt buys one more pack, whose credit must repay the debt; the
   first credit is killed after its commit and before the repayment, and one
   event of the phase is never delivered, as if Stripe had given up (step repay).

Then the server restarts without faults, ``tokens replay-events --since 1h``
processes exactly the events never delivered, ``tokens reconcile`` (with the
sandbox as provider) exits 0, and:

- every armed fault fired, and the killer killed in every step it ran in;
- every purchase the sandbox took payment for is ``paid`` with exactly one
  purchase credit, for its pack's tokens, and has ``tokens * amount_refunded
  // amount`` refunded tokens for the sandbox's final refund;
- every spend or tip answered 2xx has exactly one journal transaction under
  its key, for its amount and with the answered transaction id; every one
  answered 402 or 403 has none;
- each user's balance and debt are exactly ``max(0, net)`` and ``max(0, -net)``,
  where net = credits - refunded tokens - acknowledged spends and tips sent
  + acknowledged tips received, with what each clawback hop took from a tip's
  recipient moved from the recipient's net to the buyer's (the hops' own rules are
  tested in test_clawback_chain.py): no credit twice, no spend lost or doubled,
  and no debt left beside a positive balance;
- every event the sandbox recorded is recorded as processed.

On Firestore the app runs as ``CRASH_FIRESTORE_PROCESSES`` (default 2) gunicorn
servers on one emulator, as Cloud Run runs several instances on one database:
each has its own worker, Firestore client and in-process locks, so only the
store's transactions can keep the ledger right. Every client request, delivery
and retry goes to the next server in turn, so the copies of one event reach
different processes at once, and the killer kills a worker of either. SQLite
runs one server.

CRASH_ROUNDS (default 1), CRASH_USERS (default 6) and CRASH_SEED size and vary
the run; ``make soak`` runs more rounds.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from config.catalog import load_catalog
from config.settings import load_settings
from services.faults import (
    AFTER_CREDIT_COMMIT,
    AFTER_SPEND_APPLY,
    AFTER_TRANSFER_APPLY,
    BEFORE_EVENT_RECORD,
    FIRESTORE_BEFORE_COMMIT,
    SQLITE_BEFORE_COMMIT,
)
from services.payments.model import PurchaseState
from services.payments.sandbox import SandboxPayments
from services.store import open_store
from services.store.firestore import FirestoreStore
from services.store.port import Store
from tests.support.crash import (
    CrashClient,
    CrashServer,
    Delivery,
    LedgerFacts,
    LedgerRequest,
    RandomKiller,
    RestartableEmulator,
    Rotation,
    check_requests,
    deliver,
    deliver_all,
    fired,
    outbox,
    request_effects,
    run_threads,
    sandbox_sessions,
)
from tests.support.purchases import wait_for
from tests.support.server import tokens_cli

SEED = int(os.environ.get("CRASH_SEED", "20261101"))
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "1"))
USERS = int(os.environ.get("CRASH_USERS", "6"))
FIRESTORE_PROCESSES = int(os.environ.get("CRASH_FIRESTORE_PROCESSES", "2"))
SENDERS = 4
SERVER_LOG_CHARS = 30_000
TOKENS = {pack.id: pack.tokens for pack in load_catalog(None)}
EVENT_LINE = re.compile(r"^(evt_\S+)\s", re.MULTILINE)


@dataclass(frozen=True)
class Profile:
    """Which faults a store's run arms in each step, and where it kills from outside.

    Steps: buy and deliver (phase A's purchases), spend (phase A's spends and
    tips), refund (phase B), repay (phase C, which always arms the first credit's
    commit and the first event record).
    """

    points: Mapping[str, tuple[str, ...]]  # armed per step, at seeded hit numbers 1-3
    killing: frozenset[str]  # steps with random kills from outside
    kills_per_step: int | None  # None: as many as fit in the step
    one_at_a_time: frozenset[str]  # steps that send one request at a time


SQLITE = Profile(
    points={
        "deliver": (BEFORE_EVENT_RECORD, AFTER_CREDIT_COMMIT, SQLITE_BEFORE_COMMIT),
        "spend": (AFTER_SPEND_APPLY, AFTER_TRANSFER_APPLY, SQLITE_BEFORE_COMMIT),
        "refund": (BEFORE_EVENT_RECORD, SQLITE_BEFORE_COMMIT),
    },
    killing=frozenset({"buy", "deliver", "spend", "refund", "repay"}),
    kills_per_step=None,
    one_at_a_time=frozenset(),
)
# On Firestore a worker killed inside a transaction leaves that transaction's
# documents locked until it expires, about 60 s later (the emulator, like
# Firestore, has no client left to roll it back): the next writer of those
# documents waits that long, and a kill with several requests in flight leaves
# several such locks. So the kills from outside and the kill before a commit
# share one step, where their waits overlap, and the other steps send one
# request at a time, so that their kills (after a commit) leave no lock. Buying
# goes one at a time too: the emulator makes concurrent checkouts, whose
# transactions query the purchases collection, wait out each other's locks.
FIRESTORE = Profile(
    points={
        "deliver": (FIRESTORE_BEFORE_COMMIT,),
        "spend": (AFTER_SPEND_APPLY, AFTER_TRANSFER_APPLY),
        "refund": (BEFORE_EVENT_RECORD,),
    },
    killing=frozenset({"deliver"}),
    kills_per_step=1,
    one_at_a_time=frozenset({"buy", "spend", "refund", "repay"}),
)


@dataclass(frozen=True)
class Bought:
    user: CrashClient
    purchase_id: str
    session_id: str
    pack: str


@dataclass
class Outage:
    """The emulator SIGKILLed in the middle of phase C's stream, and started again from
    an export taken at a quiescent point just before the kill."""

    emulator: RestartableEmulator
    project: str
    statuses_while_down: list[int] = field(default_factory=list)
    answered_while_down: list[Delivery] = field(default_factory=list)
    exports: int = 0

    def during(self, server: CrashServer, work: Callable[[], list[Delivery]]) -> list[Delivery]:
        """Export, kill the emulator, run ``work`` (the rest of the stream) meanwhile,
        wait for /readyz to say 503, start the emulator from the export, let ``work`` end."""
        export = self.emulator.export(self.project)
        self.exports += 1
        self.emulator.kill()
        killed_at = time.monotonic()
        done: list[Delivery] = []
        rest = threading.Thread(target=lambda: done.extend(work()), daemon=True)
        rest.start()

        def unavailable() -> bool:
            try:
                response = requests.get(f"{server.url}/readyz", timeout=60)
            except requests.RequestException:  # the random killer's work
                return False
            self.statuses_while_down.append(response.status_code)
            return response.status_code == 503 and response.json()["code"] == (
                "storage_unavailable"
            )

        wait_for(unavailable, "503 storage_unavailable while the emulator is down", 120)
        restarting_at = time.monotonic()
        self.emulator.start_from(export)
        wait_for(lambda: ready(server), "/readyz 200 once the emulator is back", timeout=120)
        rest.join()
        self.answered_while_down += [
            d for d in done if killed_at <= d.answer.answered_at < restarting_at
        ]
        return done


def ready(server: CrashServer) -> bool:
    """Every server process answers /readyz 200."""
    try:
        return all(
            requests.get(f"{url}/readyz", timeout=60).status_code == 200 for url in server.urls
        )
    except requests.RequestException:
        return False


class CrashRun:
    def __init__(
        self, server: CrashServer, store: Store, profile: Profile, outage: Outage | None = None
    ) -> None:
        self.server = server
        self.store = store
        self.profile = profile
        self.outage = outage
        self.spread = Rotation(server.urls)  # deliveries, over every server process
        self.rng = random.Random(SEED)
        self.sandbox_db = server.env["SANDBOX_DB_PATH"]
        # Stripe's side of the refunds, on the sandbox's own database.
        self.sandbox = SandboxPayments(load_settings(server.env))
        self.seen_rowid = 0
        self.bought: list[Bought] = []
        self.requests: list[LedgerRequest] = []
        self.deliveries: list[Delivery] = []
        self.skipped: set[str] = set()
        self.armed: list[tuple[Path, set[str]]] = []
        self.random_kills: list[int] = []
        self.started = time.monotonic()

    def note(self, what: str) -> None:
        """A timeline on stdout, which pytest shows when the test fails."""
        print(f"{time.monotonic() - self.started:7.1f}s  {what}")

    # -- steps ----------------------------------------------------------------------------

    def killer(self, step: str) -> RandomKiller:
        if step not in self.profile.killing:
            return RandomKiller(self.server, self.rng, limit=0)
        return RandomKiller(self.server, self.rng, limit=self.profile.kills_per_step)

    def faults(self, step: str) -> list[tuple[str, int]]:
        return [(point, self.rng.randint(1, 3)) for point in self.profile.points[step]]

    def arm(self, faults: Sequence[tuple[str, int]]) -> None:
        """Restart the whole server with these faults armed, counted from zero."""
        self.note(f"restart, armed: {faults}")
        state = self.server.restart(",".join(f"{point}:{hit}" for point, hit in faults))
        assert state is not None
        self.armed.append((state, {f"{point}-{hit}" for point, hit in faults}))

    def new_events(self) -> list[dict[str, Any]]:
        rows = outbox(self.sandbox_db, self.seen_rowid)
        if rows:
            self.seen_rowid = rows[-1][0]
        return [event for _, event in rows]

    def buy(self, users: Sequence[CrashClient], packs: Sequence[str], tag: str) -> None:
        def one(user: CrashClient) -> None:
            for n, pack in enumerate(packs):
                started = user.checkout(pack, key=f"{tag}-{user.user_id}-{n}")
                user.pay(started["url"])
                bought = Bought(user, started["purchase_id"], started["session_id"], pack)
                self.bought.append(bought)

        if "buy" in self.profile.one_at_a_time:
            for user in users:
                one(user)
        else:
            each(users, one)

    def stream(
        self,
        step: str,
        events: list[dict[str, Any]],
        copies: tuple[int, int],
        skip: int = 0,
        outage: Outage | None = None,
    ) -> None:
        """Deliver ``events`` 1..n times each in shuffled order, except ``skip`` of them,
        while the worker is killed at random; duplicates go on until it has been killed."""
        skipped = self.rng.sample(events, skip)
        self.skipped |= {e["id"] for e in skipped}
        sent = [e for e in events if e not in skipped]
        sends = [e for e in sent for _ in range(self.rng.randint(*copies))]
        self.rng.shuffle(sends)
        extra = random.Random(self.rng.random())
        senders = 1 if step in self.profile.one_at_a_time else SENDERS
        with self.killer(step) as killer:
            half = len(sends) // 2 if outage is not None else len(sends)
            results = deliver_all(self.spread, sends[:half], senders)
            if outage is not None:
                rest = sends[half:]
                results += outage.during(
                    self.server, lambda: deliver_all(self.spread, rest, senders)
                )
                assert len(results) == len(sends), "the deliveries failed; see the error above"
            with requests.Session() as http:
                while not killer.kills and sent and step in self.profile.killing:
                    results.append(deliver(self.spread, extra.choice(sent), http))
        self.random_kills += killer.kills
        self.deliveries += results

    def spend_and_tip(self, users: Sequence[CrashClient], duplicates: list[dict[str, Any]]) -> None:
        """Each user spends three times and tips twice, while old events arrive again
        (unless the step goes one request at a time)."""
        plans = {}
        for user in users:
            others = [u for u in users if u is not user]
            ops: list[tuple[str, int, str | None]] = [
                ("spend", self.rng.randint(20, 35), None) for _ in range(3)
            ]
            ops += [
                ("transfer", self.rng.randint(5, 15), self.rng.choice(others).user_id)
                for _ in range(2)
            ]
            self.rng.shuffle(ops)
            plans[user.user_id] = ops
        lock = threading.Lock()

        def one(user: CrashClient) -> None:
            for n, (kind, amount, recipient) in enumerate(plans[user.user_id]):
                key = f"{kind}-{n}"
                if recipient is None:
                    made = user.spend(amount, key)
                else:
                    made = user.tip(recipient, amount, key)
                assert made.answer.status in (200, 402, 403), made.answer
                with lock:
                    self.requests.append(made)

        with self.killer("spend") as killer:
            if "spend" in self.profile.one_at_a_time:
                for user in users:
                    one(user)
            else:
                again = threading.Thread(
                    target=lambda: self.deliveries.extend(deliver_all(self.spread, duplicates, 2)),
                    daemon=True,
                )
                again.start()
                each(users, one)
                again.join()
            if "spend" in self.profile.killing:
                killer.wait_for_kills(1, timeout=120)
        self.random_kills += killer.kills

    def refund(self, bought: Bought, amount: int | None) -> None:
        self.sandbox.refund(bought.session_id, amount)

    # -- one round: phases A, B and C -------------------------------------------------

    def round(self, number: int) -> None:
        users = [
            CrashClient(self.server.urls, f"crash-{SEED}-{number}-{i}@example.com")
            for i in range(USERS)
        ]
        self.arm(self.faults("deliver"))
        with self.killer("buy") as killer:
            self.buy(users, ["popular", "starter"], f"a{number}")
        self.random_kills += killer.kills
        self.note(f"round {number}: phase A bought")
        bought_a = self.new_events()
        self.stream("deliver", bought_a, copies=(1, 2))
        self.note(f"round {number}: phase A delivered")
        self.arm(self.faults("spend"))
        self.spend_and_tip(users, self.rng.sample(bought_a, min(4, len(bought_a))))
        self.note(f"round {number}: phase A spent and tipped")

        self.arm(self.faults("refund"))
        for bought in self.bought[-2 * USERS :]:
            if bought.pack == "popular":
                self.refund(bought, self.rng.randint(100, 900))
                self.refund(bought, None)
            elif self.rng.random() < 0.5:
                self.refund(bought, self.rng.randint(100, 400))
        self.stream("refund", self.new_events(), copies=(1, 3))
        self.note(f"round {number}: phase B refunded")

        debtors = [user for user in users if user.account()["debt"] > 0]
        assert len(debtors) >= 2, "the spends were sized to leave most users in debt"
        # The first credit dies after its commit, before the debt repayment.
        self.arm([(AFTER_CREDIT_COMMIT, 1), (BEFORE_EVENT_RECORD, 1)])
        self.buy(debtors, ["popular"], f"c{number}")
        self.note(f"round {number}: phase C bought")
        self.stream("repay", self.new_events(), copies=(1, 2), skip=1, outage=self.outage)
        self.note(f"round {number}: phase C delivered")

    # -- afterwards -----------------------------------------------------------------------

    def finish(self) -> None:
        self.server.restart(None)
        self.note("restarted without faults")
        replay = tokens_cli(self.server.env, "replay-events", "--since", "1h")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert ", failed 0" in replay.stdout
        replayed = set(EVENT_LINE.findall(replay.stdout))
        assert replayed == self.skipped, replay.stdout
        self.note(f"replayed {len(replayed)} events")
        reconcile = tokens_cli(self.server.env, "reconcile")
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        assert "OK: everything reconciles" in reconcile.stdout

    def check(self) -> None:
        for state, labels in self.armed:
            assert fired(state) == labels, f"armed {sorted(labels)}, fired {sorted(fired(state))}"
        assert len(self.random_kills) >= len(self.profile.killing - {"buy"}) * ROUNDS
        assert all(200 <= d.answer.status < 300 for d in self.deliveries)
        assert any(d.answer.retried for d in self.deliveries)

        facts = LedgerFacts.read(self.store)
        sessions = sandbox_sessions(self.sandbox_db)
        net = request_effects(self.requests)
        problems = check_requests(facts, self.requests)
        for bought in self.bought:
            session = sessions[bought.session_id]
            assert session["payment_status"] == "paid"
            tokens = TOKENS[bought.pack]
            refunded = tokens * int(session.get("amount_refunded", 0)) // session["amount_total"]
            net[bought.user.user_id] += tokens - refunded
            purchase = self.store.get_purchase(bought.purchase_id)
            assert purchase is not None
            credits = facts.credits.get(bought.purchase_id, [])
            if purchase.state is not PurchaseState.PAID or len(credits) != 1:
                problems.append(f"{bought.purchase_id}: {purchase.state}, {len(credits)} credits")
                continue
            if credits[0].user_entry(bought.user.user_id).amount != tokens:
                problems.append(f"{bought.purchase_id}: credited {credits[0].entries}")
            if purchase.refunded_tokens != refunded:
                problems.append(f"{bought.purchase_id}: {purchase.refunded_tokens} refunded")
        assert len(facts.credits) == len(self.bought)
        for holder, buyer, taken in facts.hops:  # a clawback followed the buyer's tips
            net[holder] -= taken
            net[buyer] += taken
        accounts = self.store.get_accounts(list(net))
        for user_id, expected in net.items():
            account = accounts[user_id]
            wanted = (max(0, expected), max(0, -expected))
            if (account.balance, account.debt) != wanted:
                problems.append(f"{user_id}: balance, debt {account.balance, account.debt}")
                problems.append(f"  expected {wanted}")
        events = [event["id"] for _, event in outbox(self.sandbox_db)]
        unrecorded = [event_id for event_id in events if not self.store.event_processed(event_id)]
        assert problems == []
        assert unrecorded == []


def each(items: Sequence[CrashClient], work: Callable[[CrashClient], None]) -> None:
    """``work`` for every item at once, a thread each."""
    pending = list(items)
    lock = threading.Lock()

    def take() -> None:
        with lock:
            item = pending.pop()
        work(item)

    run_threads(take, len(items))


def run_rounds(run: CrashRun) -> None:
    try:
        for number in range(ROUNDS):
            run.round(number)
        run.finish()
    except BaseException:
        # The servers' logs (tracebacks of any 500) go with the failure's captured stdout.
        print(run.server.output(tail=SERVER_LOG_CHARS))
        raise
    run.check()


def test_sqlite_survives_kills_between_every_step(tmp_path: Path) -> None:
    """SQLite: a kill between the journal write and COMMIT leaves nothing behind."""
    url = f"sqlite:///{tmp_path}/tokens.db"
    server = CrashServer({"STORE_URL": url, "SANDBOX_WEBHOOKS": "off"}).start()
    store = open_store(url)
    try:
        run_rounds(CrashRun(server, store, SQLITE))
    finally:
        store.close()
        server.stop()


@pytest.fixture
def dedicated_emulator(tmp_path: Path) -> Iterator[RestartableEmulator]:
    emulator = RestartableEmulator(tmp_path / "exports")
    try:
        emulator.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the Firestore emulator: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


def test_firestore_survives_kills_and_an_emulator_restart(
    dedicated_emulator: RestartableEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Firestore: kills inside the transaction function before its commit, and the
    emulator itself SIGKILLed in phase C and started again from an export.

    Halfway through phase C's deliveries, once every delivery so far has been
    answered (a quiescent point: nothing is being written), the emulator's data
    is exported through its REST endpoint and the emulator is SIGKILLed; the
    rest of phase C's deliveries start at once. While it is down /readyz must
    answer 503 ``storage_unavailable`` and no delivery may be acknowledged; then
    it starts again with ``--import-data`` from the export, the waiting
    deliveries complete, and every check of the SQLite test holds, including
    the replay processing exactly the event never delivered. (The emulator
    keeps data in memory: anything written between an export and a kill would
    be lost, which production Firestore never does; hence the quiescent point.)
    """
    project = f"demo-crash-{SEED}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", dedicated_emulator.host)
    url = f"firestore://{project}"
    server = CrashServer(
        {
            "STORE_URL": url,
            "SANDBOX_WEBHOOKS": "off",
            "FIRESTORE_EMULATOR_HOST": dedicated_emulator.host,
        },
        processes=FIRESTORE_PROCESSES,
    ).start()
    store = FirestoreStore(project)
    outage = Outage(dedicated_emulator, project)
    try:
        run_rounds(CrashRun(server, store, FIRESTORE, outage))
        assert outage.exports == ROUNDS
        assert outage.statuses_while_down[-1] == 503
        assert outage.answered_while_down == []
    finally:
        store.close()
        server.stop()
