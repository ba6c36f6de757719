"""Machinery for the crash tests: a server whose worker can be killed, clients
that retry as Stripe and well-behaved clients do, and what the store holds afterwards.

Every request is retried until it gets an answer below 500: connection errors
(the worker died mid-request) and 5xx (storage unavailable or contended) are
retried, like Stripe retries a webhook and a client retries with the same
Idempotency-Key. The answer that ends the retries is the one that counts.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from services.faults import ENV_SPEC, ENV_STATE
from services.ledger.model import JournalTransaction, TxnType
from services.store.port import Store
from tests.support.firestore_emulator import EMULATOR, FirestoreEmulator
from tests.support.limits import LOAD_LIMITS
from tests.support.server import AppServer
from tests.support.site_client import SiteClient
from tests.support.webhooks import WEBHOOK_PATH, delivery

ANSWER_DEADLINE_S = 240.0
REQUEST_TIMEOUT_S = 150.0  # longer than a Firestore transaction waiting out a dead one's lock
BACKOFF_START_S, BACKOFF_MAX_S = 0.05, 1.0
WORKER_WAIT_S = 60.0
CARD_PAYS = "4242 4242 4242 4242"


# -- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    attempts: int  # 1: answered at the first try
    answered_at: float  # time.monotonic() when the answer arrived
    failures: tuple[str, ...] = ()  # what the earlier attempts got

    @property
    def retried(self) -> bool:
        return self.attempts > 1


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"text": response.text[:200]}
    return body if isinstance(body, dict) else {"value": body}


def until_answered(
    call: Callable[[], requests.Response], what: str, deadline_s: float = ANSWER_DEADLINE_S
) -> Answer:
    """Call until the answer is below 500; fail naming ``what`` when the deadline passes."""
    deadline = time.monotonic() + deadline_s
    delay = BACKOFF_START_S
    failures: list[str] = []
    while True:
        try:
            response = call()
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        else:
            if response.status_code < 500:
                return Answer(
                    response.status_code,
                    _json(response),
                    len(failures) + 1,
                    time.monotonic(),
                    tuple(failures),
                )
            failures.append(str(response.status_code))
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: no answer below 500 in {deadline_s}s; got {Counter(failures)}"
            )
        time.sleep(delay)  # the retry policy's backoff, as Stripe and clients wait between tries
        delay = min(delay * 2, BACKOFF_MAX_S)


# -- the server -------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid``, from /proc (gunicorn's workers of its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


class CrashServer(AppServer):
    """The app under gunicorn, with its workers killable and the whole server restartable.

    With ``processes=N`` these are N gunicorn servers on one database (see AppServer),
    each with one worker. Gunicorn's master starts a new worker when one dies;
    ``halt`` and ``start`` stop and start every server on the same data.
    """

    def __init__(self, env: dict[str, str], processes: int = 1) -> None:
        # Production's 8 threads: requests waiting on a store that is down or locked
        # must leave threads to answer the others (and /readyz).
        super().__init__({**LOAD_LIMITS, **env}, processes=processes, threads=8)
        self.fault_dirs: list[Path] = []
        self.worker_kills: list[int] = []

    def start(self) -> CrashServer:
        super().start()
        return self

    def master_pid(self, n: int = 0) -> int:
        process = self.running[n]
        if process is None or process.poll() is not None:
            raise AssertionError(f"gunicorn {n} is not running:\n{self.output()[-3000:]}")
        return process.pid

    def worker_pid(self, n: int = 0, timeout: float = WORKER_WAIT_S) -> int:
        """The n-th server's worker pid, once its master has one running."""
        deadline = time.monotonic() + timeout
        while True:
            workers = children_of(self.master_pid(n))
            if len(workers) == 1:
                return workers[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn {n} has workers {workers} after {timeout}s")
            time.sleep(0.05)

    def kill_worker(self, n: int = 0) -> int:
        pid = self.worker_pid(n)
        os.kill(pid, signal.SIGKILL)
        self.worker_kills.append(pid)
        return pid

    def wait_healthy(self, timeout: float = WORKER_WAIT_S) -> None:
        """Every server answers /healthz."""
        deadline = time.monotonic() + timeout
        for url in self.urls:
            while True:
                try:
                    if requests.get(f"{url}/healthz", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no healthy worker at {url} after {timeout}s:\n{self.output()[-3000:]}"
                    )
                time.sleep(0.05)

    def halt(self) -> None:
        """Stop every gunicorn, keeping the data, the logs and the ports for the next start."""
        for n in range(len(self.running)):
            self.halt_one(n)

    def restart(self, faults: str | None) -> Path | None:
        """A full stop and start; ``faults`` arms TOKEN_STORE_FAULTS with a fresh hit count
        (counted across every process, in one state directory)."""
        self.halt()
        self.env.pop(ENV_SPEC, None)
        self.env.pop(ENV_STATE, None)
        state = None
        if faults:
            state = Path(self.workdir.name) / f"faults-{uuid.uuid4().hex[:8]}"
            self.env[ENV_SPEC] = faults
            self.env[ENV_STATE] = str(state)
            self.fault_dirs.append(state)
        self.start()
        return state


class Rotation:
    """Round-robin over a server's URLs, shared by threads: consecutive requests (and
    the retries of one request) go to different processes, as a load balancer spreads
    them over instances."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            return self.urls[next(self._counter) % len(self.urls)]


def fired(state: Path) -> set[str]:
    """The faults (``point-hit``) that killed a worker, from their markers."""
    return {p.name.removesuffix(".fired") for p in state.glob("*.fired")}


class RandomKiller:
    """Kills the worker from outside at random moments, after it has started serving."""

    def __init__(
        self,
        server: CrashServer,
        rng: random.Random,
        limit: int | None = None,
        every_s: tuple[float, float] = (0.3, 1.5),
    ) -> None:
        self.server = server
        self.rng = random.Random(rng.random())
        self.limit = limit  # at most this many kills (None: no limit, 0: none)
        self.every_s = every_s
        self.kills: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="random-killer", daemon=True)

    def __enter__(self) -> RandomKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WORKER_WAIT_S)
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and (self.limit is None or len(self.kills) < self.limit):
                self.server.wait_healthy()
                if self._stop.wait(self.rng.uniform(*self.every_s)):
                    return
                processes = len(self.server.urls)
                which = self.rng.randrange(processes) if processes > 1 else 0
                self.kills.append(self.server.kill_worker(which))
        except BaseException as exc:
            self.errors.append(exc)

    def wait_for_kills(self, count: int, timeout: float = WORKER_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while len(self.kills) < count:
            if self.errors:
                raise self.errors[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.kills)} random kills after {timeout}s")
            time.sleep(0.05)


# -- Stripe's side ------------------------------------------------------------------------


def outbox(sandbox_db: str, after_rowid: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """(rowid, event) for every event the sandbox recorded after ``after_rowid``, in order."""
    with closing(sqlite3.connect(sandbox_db, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT rowid, payload FROM outbox WHERE rowid > ? ORDER BY rowid", (after_rowid,)
        ).fetchall()
    return [(int(rowid), json.loads(payload)) for rowid, payload in rows]


def sandbox_sessions(sandbox_db: str) -> dict[str, dict[str, Any]]:
    """Every checkout session as the sandbox (Stripe's stand-in) has it, by id."""
    with closing(sqlite3.connect(sandbox_db, timeout=30)) as conn:
        rows = conn.execute("SELECT id, body FROM sessions").fetchall()
    return {str(session_id): json.loads(body) for session_id, body in rows}


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    answer: Answer


def deliver(
    where: str | Sequence[str] | Rotation, event: Mapping[str, Any], http: requests.Session
) -> Delivery:
    """One delivery of ``event``, signed afresh at every try as Stripe does; each try
    goes to the next of ``where``'s servers."""
    payload = json.dumps(event).encode()
    rotation = where if isinstance(where, Rotation) else Rotation(where)

    def post() -> requests.Response:
        body, headers = delivery(payload)
        return http.post(
            f"{rotation()}{WEBHOOK_PATH}", data=body, headers=headers, timeout=REQUEST_TIMEOUT_S
        )

    answer = until_answered(post, f"delivery of {event['id']} ({event['type']})")
    return Delivery(str(event["id"]), str(event["type"]), answer)


def deliver_all(
    where: str | Sequence[str] | Rotation,
    events: Iterable[Mapping[str, Any]],
    senders: int,
    done: list[Delivery] | None = None,
) -> list[Delivery]:
    """Deliver ``events`` (in the given order) from ``senders`` threads, one Session each,
    spread over ``where``'s servers; each delivery is appended to ``done`` as soon as it
    is answered."""
    rotation = where if isinstance(where, Rotation) else Rotation(where)
    queue = list(events)
    queue.reverse()
    lock = threading.Lock()
    done = [] if done is None else done
    errors: list[BaseException] = []

    def sender() -> None:
        with requests.Session() as http:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    item = queue.pop()
                try:
                    result = deliver(rotation, item, http)
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    done.append(result)

    run_threads(sender, senders)
    if errors:
        raise errors[0]
    return done


def run_threads(work: Callable[[], None], count: int) -> None:
    """Run ``work`` in ``count`` threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# -- a user ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRequest:
    """A spend or tip as the client saw it: the answer that ended its retries."""

    kind: str  # "spend" or "transfer", as in the journal key
    user_id: str
    key: str  # the client's Idempotency-Key
    amount: int
    recipient_id: str | None
    answer: Answer

    @property
    def journal_key(self) -> str:
        return f"{self.kind}:{self.user_id}:{self.key}"

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.answer.status < 300


class CrashClient(SiteClient):
    """A signed-in user whose calls are retried.

    Its requests go round-robin to ``urls``' servers (the session cookie is valid on
    each: the session lives in the shared store).
    """

    timeout = REQUEST_TIMEOUT_S

    def __init__(self, urls: str | Sequence[str], email: str) -> None:
        self.next_url = Rotation(urls)
        super().__init__(self.next_url.urls[0])
        answer = until_answered(
            lambda: self.dev_login(email, timeout=REQUEST_TIMEOUT_S), f"dev-login of {email}"
        )
        assert answer.status == 200, answer.body
        self.signed_in(answer.body)

    def server(self) -> str:
        return self.next_url()

    def checkout(self, package: str, key: str) -> dict[str, Any]:
        """Start a checkout; the Idempotency-Key makes a retried click the same purchase."""
        answer = until_answered(
            lambda: self.post(
                "/api/tokens/create-checkout-session",
                json={"package": package},
                headers={"Idempotency-Key": key},
            ),
            f"checkout {key}",
        )
        assert answer.status == 200, answer.body
        return answer.body

    def pay(self, checkout_url: str) -> None:
        """Pay on the sandbox's checkout form, without following the redirect to the
        success page: the webhook, not the page, is what these tests exercise."""
        answer = until_answered(
            lambda: self.pay_on_checkout_page(checkout_url, CARD_PAYS),
            f"payment of {checkout_url}",
        )
        assert answer.status == 303, answer.body

    def spend(self, amount: int, key: str) -> LedgerRequest:
        answer = until_answered(
            lambda: self.post(
                "/api/tokens/spend",
                json={"amount": amount, "reason": "crash test"},
                headers={"Idempotency-Key": key},
            ),
            f"spend {key}",
        )
        return LedgerRequest("spend", self.user_id, key, amount, None, answer)

    def tip(self, recipient_id: str, amount: int, key: str) -> LedgerRequest:
        answer = until_answered(
            lambda: self.post(
                "/api/tokens/transfer",
                json={"recipient": recipient_id, "amount": amount},
                headers={"Idempotency-Key": key},
            ),
            f"tip {key}",
        )
        return LedgerRequest("transfer", self.user_id, key, amount, recipient_id, answer)

    def account(self) -> dict[str, Any]:
        answer = until_answered(
            lambda: self.get("/api/tokens/balance"),
            f"balance of {self.user_id}",
        )
        assert answer.status == 200, answer.body
        return answer.body


# -- what the store holds ---------------------------------------------------------------


@dataclass
class LedgerFacts:
    """The journal read once: purchase credits by purchase, transactions by key, and
    what each clawback hop moved (holder, buyer, tokens)."""

    credits: dict[str, list[JournalTransaction]] = field(default_factory=dict)
    by_key: dict[str, list[JournalTransaction]] = field(default_factory=dict)
    hops: list[tuple[str, str, int]] = field(default_factory=list)

    @classmethod
    def read(cls, store: Store) -> LedgerFacts:
        facts = cls()
        for txn in store.iter_transactions():
            facts.by_key.setdefault(txn.key, []).append(txn)
            if txn.type is TxnType.PURCHASE:
                facts.credits.setdefault(txn.refs.get("purchase_id", ""), []).append(txn)
            if txn.type is TxnType.CLAWBACK_HOP:
                facts.hops.append(_hop(txn))
        return facts


def _hop(txn: JournalTransaction) -> tuple[str, str, int]:
    """A hop takes from the holder what lowers the buyer's debt (services.ledger.rules)."""
    holder, buyer = sorted(
        (entry for entry in txn.entries if entry.user_id is not None), key=lambda e: e.index
    )
    return str(holder.user_id), str(buyer.user_id), -holder.amount


def check_requests(facts: LedgerFacts, requests_made: Iterable[LedgerRequest]) -> list[str]:
    """Every acknowledged spend or tip took effect once; every refused one, not at all."""
    problems = []
    for request in requests_made:
        found = facts.by_key.get(request.journal_key, [])
        if not request.acknowledged:
            if found:
                problems.append(f"{request.journal_key} answered {request.answer.status} yet ran")
            continue
        if len(found) != 1:
            problems.append(f"{request.journal_key}: {len(found)} journal transactions, not 1")
            continue
        entry = found[0].user_entry(request.user_id)
        if entry.amount != -request.amount:
            problems.append(f"{request.journal_key}: moved {entry.amount}, not -{request.amount}")
        if request.answer.body.get("transaction_id") != found[0].id:
            problems.append(f"{request.journal_key}: answered another transaction id")
    return problems


def request_effects(requests_made: Iterable[LedgerRequest]) -> Counter[str]:
    """Net tokens each user gained from the acknowledged spends and tips."""
    net: Counter[str] = Counter()
    for request in requests_made:
        if request.acknowledged:
            net[request.user_id] -= request.amount
            if request.recipient_id is not None:
                net[request.recipient_id] += request.amount
    return net


# -- a Firestore emulator that can die and come back --------------------------------------


class RestartableEmulator(FirestoreEmulator):
    """A dedicated emulator that can be exported, killed (SIGKILL) and started again on
    the same port from an export. Data written after the last export is lost on a kill:
    the emulator keeps everything in memory."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.import_from: Path | None = None
        self.exports = 0

    def start(self) -> RestartableEmulator:
        if not EMULATOR.exists():
            raise RuntimeError(f"Firestore emulator not found at {EMULATOR}")
        command = [str(EMULATOR), "start", "--host=127.0.0.1", f"--port={self.port}"]
        if self.import_from is not None:
            command.append(f"--import-data={self.import_from}")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        return self

    def export(self, project: str) -> Path:
        """Export every document now (the emulator's REST endpoint); returns the metadata file."""
        self.exports += 1
        target = self.workdir / f"export-{self.exports}"
        target.mkdir(parents=True)
        response = requests.post(
            f"http://{self.host}/emulator/v1/projects/{project}:export",
            json={
                "database": f"projects/{project}/databases/(default)",
                "export_directory": str(target),
            },
            timeout=60,
        )
        response.raise_for_status()
        [metadata] = target.glob("*/*.overall_export_metadata")
        return metadata

    def kill(self) -> None:
        """SIGKILL the launcher and its java child: nothing is written on the way out."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def start_from(self, metadata: Path) -> None:
        self.import_from = metadata
        self.start()
