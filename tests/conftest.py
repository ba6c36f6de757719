"""Session-wide services that tests start themselves, and the store every store test runs on."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import requests

# Tests build their own apps with create_app(); importing app.py must not
# also open the default development database.
os.environ.setdefault("TOKEN_STORE_NO_MODULE_APP", "1")

from tests.support.firebase_auth_emulator import FirebaseAuthEmulator, FirebaseAuthEmulatorError
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.server import AppServer
from tests.support.stores import STORE_KINDS, StoreUrls


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    """The official emulator on a free port; a start failure fails the tests that need it.

    Firestore clients made in this process talk to it through
    FIRESTORE_EMULATOR_HOST, the variable the client library reads.
    """
    emulator = FirestoreEmulator()
    try:
        emulator.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the Firestore emulator: {exc}", pytrace=False)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    yield emulator
    emulator.stop()
    if previous is None:
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
    else:
        os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def firebase_auth_emulator_process() -> Iterator[FirebaseAuthEmulator]:
    """The Firebase Auth emulator on a free port, one per test session."""
    emulator = FirebaseAuthEmulator()
    try:
        emulator.start()
    except FirebaseAuthEmulatorError as exc:
        pytest.fail(f"could not start the Firebase Auth emulator: {exc}", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def firebase_auth_emulator(
    firebase_auth_emulator_process: FirebaseAuthEmulator, monkeypatch: pytest.MonkeyPatch
) -> FirebaseAuthEmulator:
    """The emulator with no users; firebase-admin in this process talks to it.

    Apps under test must use ``emulator.project_id`` as FIREBASE_PROJECT_ID;
    a server started in another process needs FIREBASE_AUTH_EMULATOR_HOST too.
    """
    firebase_auth_emulator_process.clear()
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", firebase_auth_emulator_process.host)
    return firebase_auth_emulator_process


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on the Firestore emulator."""
    kind = str(request.param)
    if kind == "firestore":
        request.getfixturevalue("firestore_emulator")
    return kind


@pytest.fixture
def store_urls(store_kind: str, tmp_path: Path) -> StoreUrls:
    """New, empty databases of the test's store kind."""
    return StoreUrls(store_kind, tmp_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A request that timed out: attach every live server's thread stacks to the report."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(requests.Timeout):
        for server in list(AppServer.live):
            report.sections.append((f"thread stacks of {' '.join(server.urls)}", server.stacks()))
    return report
