"""The crash tests' fault hook: inert without TOKEN_STORE_FAULTS, exact with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_settings
from services import faults
from services.faults import (
    AFTER_CREDIT_COMMIT,
    BEFORE_EVENT_RECORD,
    POINTS,
    Fault,
    FaultInjector,
    FaultSpecError,
    parse_spec,
)
from tests.unit.test_settings import PRODUCTION

ROOT = Path(__file__).resolve().parents[2]
HIT_FIVE_TIMES = (
    "import sys; from services.faults import fault_point\n"
    "for n in range(1, 6):\n"
    "    fault_point(sys.argv[1]); print(n, flush=True)\n"
)


def run_points(env: dict[str, str], point: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_STORE_FAULTS")}
    return subprocess.run(
        [sys.executable, "-c", HIT_FIVE_TIMES, point],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Kills:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_without_the_variable_every_point_is_a_no_op() -> None:
    assert "TOKEN_STORE_FAULTS" not in os.environ
    assert faults._injector is None
    for point in sorted(POINTS):
        for _ in range(100):
            faults.fault_point(point)
    result = run_points({}, BEFORE_EVENT_RECORD)
    assert (result.returncode, result.stdout.split()) == (0, ["1", "2", "3", "4", "5"])


def test_an_armed_point_kills_the_process_at_its_hit() -> None:
    result = run_points({"TOKEN_STORE_FAULTS": f"{BEFORE_EVENT_RECORD}:3"}, BEFORE_EVENT_RECORD)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2"]
    other = run_points({"TOKEN_STORE_FAULTS": f"{BEFORE_EVENT_RECORD}:1"}, AFTER_CREDIT_COMMIT)
    assert other.returncode == 0


def test_specs_parse_and_bad_ones_are_refused() -> None:
    assert parse_spec("after_credit_commit:3, before_event_record:p0.25,") == (
        Fault(AFTER_CREDIT_COMMIT, hit=3),
        Fault(BEFORE_EVENT_RECORD, probability=0.25),
    )
    for bad in ("nowhere:1", "after_credit_commit", "after_credit_commit:0", "x:p2"):
        with pytest.raises(FaultSpecError):
            parse_spec(bad)
    for bad in ("after_credit_commit:p0", "after_credit_commit:p1.5", "after_credit_commit:pX"):
        with pytest.raises(FaultSpecError):
            parse_spec(bad)


def test_a_shared_state_fires_each_fault_once_across_processes(tmp_path: Path) -> None:
    kills = Kills()
    spec = parse_spec(f"{AFTER_CREDIT_COMMIT}:2")
    first = FaultInjector(spec, tmp_path, kill=kills)
    first.hit(AFTER_CREDIT_COMMIT)
    first.hit(BEFORE_EVENT_RECORD)  # not armed: not counted
    assert kills.count == 0
    # A new worker after a restart goes on counting from the shared state.
    second = FaultInjector(spec, tmp_path, kill=kills)
    second.hit(AFTER_CREDIT_COMMIT)
    assert kills.count == 1
    assert (tmp_path / "after_credit_commit-2.fired").exists()
    for _ in range(5):
        FaultInjector(spec, tmp_path, kill=kills).hit(AFTER_CREDIT_COMMIT)
    assert kills.count == 1
    assert (tmp_path / f"{AFTER_CREDIT_COMMIT}.hits").read_text() == "7"


def test_without_shared_state_hits_are_counted_per_process() -> None:
    kills = Kills()
    injector = FaultInjector(parse_spec(f"{AFTER_CREDIT_COMMIT}:2"), kill=kills)
    for _ in range(4):
        injector.hit(AFTER_CREDIT_COMMIT)
    assert (kills.count, injector.hits) == (1, {AFTER_CREDIT_COMMIT: 4})


def test_a_probability_of_one_fires_at_every_hit() -> None:
    kills = Kills()
    injector = FaultInjector(parse_spec(f"{AFTER_CREDIT_COMMIT}:p1"), seed=7, kill=kills)
    for _ in range(3):
        injector.hit(AFTER_CREDIT_COMMIT)
    assert kills.count == 3


def test_production_refuses_fault_injection() -> None:
    load_settings(PRODUCTION)
    with pytest.raises(ConfigError, match="TOKEN_STORE_FAULTS is set"):
        load_settings({**PRODUCTION, "TOKEN_STORE_FAULTS": f"{AFTER_CREDIT_COMMIT}:1"})
    assert load_settings({"TOKEN_STORE_FAULTS": f"{AFTER_CREDIT_COMMIT}:1"}).app_env == (
        "development"
    )
