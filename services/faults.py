"""Fault injection for the crash tests: kill this process between two steps of one operation.

``fault_point(name)`` does nothing unless ``TOKEN_STORE_FAULTS`` was set when
this module was imported; production never sets it, and the settings refuse
it when ``APP_ENV=production``. The variable lists comma-separated faults:

- ``NAME:N``: SIGKILL this process at the Nth hit of point NAME;
- ``NAME:pX``: SIGKILL at each hit of NAME with probability X (0 < X <= 1), from
  a generator seeded with ``TOKEN_STORE_FAULTS_SEED`` and the process id.

With ``TOKEN_STORE_FAULTS_STATE=<directory>``, hits are counted in that
directory across every process sharing it (gunicorn starts a new worker
after each kill, and a per-process count would start again at zero), and an
``NAME:N`` fault fires once in all: otherwise the retry that follows a kill
would meet the same fault in every new worker and never get through.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_SPEC = "TOKEN_STORE_FAULTS"
ENV_STATE = "TOKEN_STORE_FAULTS_STATE"
ENV_SEED = "TOKEN_STORE_FAULTS_SEED"

# The points, each between two steps of one operation.
BEFORE_EVENT_RECORD = "before_event_record"  # event handled, its id not yet recorded
AFTER_CREDIT_COMMIT = "after_credit_commit"  # credit committed, debt not yet settled
AFTER_RESTORE_COMMIT = "after_restore_commit"  # won dispute restored, debt not yet settled
SQLITE_BEFORE_COMMIT = "sqlite_before_commit"  # journal and accounts written, no COMMIT
FIRESTORE_BEFORE_COMMIT = "firestore_before_commit"  # transaction writes queued, no commit
AFTER_SPEND_APPLY = "after_spend_apply"  # spend committed, no answer sent
AFTER_TRANSFER_APPLY = "after_transfer_apply"  # tip committed, no answer sent
POINTS = frozenset(
    {
        BEFORE_EVENT_RECORD,
        AFTER_CREDIT_COMMIT,
        AFTER_RESTORE_COMMIT,
        SQLITE_BEFORE_COMMIT,
        FIRESTORE_BEFORE_COMMIT,
        AFTER_SPEND_APPLY,
        AFTER_TRANSFER_APPLY,
    }
)


class FaultSpecError(ValueError):
    """TOKEN_STORE_FAULTS names an unknown point or a malformed trigger."""


@dataclass(frozen=True)
class Fault:
    point: str
    hit: int | None = None  # kill at this hit...
    probability: float | None = None  # ...or at each hit with this probability

    @property
    def label(self) -> str:
        return f"{self.point}-{self.hit}" if self.hit is not None else f"{self.point}-p"


def parse_spec(spec: str) -> tuple[Fault, ...]:
    faults = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        point, _, trigger = item.partition(":")
        if point not in POINTS:
            raise FaultSpecError(f"unknown fault point {point!r}; known: {sorted(POINTS)}")
        if trigger.isdigit() and int(trigger) >= 1:
            faults.append(Fault(point, hit=int(trigger)))
            continue
        try:
            probability = float(trigger[1:]) if trigger.startswith("p") else -1.0
        except ValueError:
            probability = -1.0
        if not 0 < probability <= 1:
            raise FaultSpecError(f"{item!r}: use NAME:N (N >= 1) or NAME:pX (0 < X <= 1)")
        faults.append(Fault(point, probability=probability))
    return tuple(faults)


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjector:
    def __init__(
        self,
        faults: tuple[Fault, ...],
        state_dir: Path | None = None,
        seed: int = 0,
        kill: Callable[[], None] = _sigkill,
    ) -> None:
        self.faults = faults
        self.points = frozenset(f.point for f in faults)
        self.state_dir = state_dir
        self.kill = kill
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._random = random.Random(f"{seed}:{os.getpid()}")
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def hit(self, point: str) -> None:
        if point not in self.points:
            return
        with self._lock:
            count = self._count(point)
            for fault in self.faults:
                if fault.point == point and self._fires(fault, count):
                    self._remember(fault)
                    self.kill()

    def _count(self, point: str) -> int:
        if self.state_dir is None:
            self.hits[point] = self.hits.get(point, 0) + 1
            return self.hits[point]
        path = self.state_dir / f"{point}.hits"
        with path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            handle.seek(0)
            count = int(handle.read() or 0) + 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(count))
            handle.flush()
        return count

    def _fires(self, fault: Fault, count: int) -> bool:
        if fault.probability is not None:
            return self._random.random() < fault.probability
        if fault.hit != count:
            return False
        return self.state_dir is None or not (self.state_dir / f"{fault.label}.fired").exists()

    def _remember(self, fault: Fault) -> None:
        """Written before the kill, so the tests can tell which faults fired."""
        if self.state_dir is not None:
            marker = self.state_dir / f"{fault.label}.fired"
            with marker.open("a") as handle:
                handle.write(f"{os.getpid()}\n")


def from_env(env: Mapping[str, str]) -> FaultInjector | None:
    spec = env.get(ENV_SPEC, "").strip()
    if not spec:
        return None
    state = env.get(ENV_STATE, "").strip()
    seed = env.get(ENV_SEED, "0").strip()
    return FaultInjector(
        parse_spec(spec), Path(state) if state else None, int(seed) if seed.isdigit() else 0
    )


_injector = from_env(os.environ)


def fault_point(name: str) -> None:
    """Nothing, unless the crash tests armed a fault at ``name``."""
    if _injector is not None:
        _injector.hit(name)
