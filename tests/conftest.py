"""Session-wide services that tests start themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Tests build their own apps with create_app(); importing app.py must not
# also open the default development database.
os.environ.setdefault("TOKEN_STORE_NO_MODULE_APP", "1")

from tests.support.firestore_emulator import FirestoreEmulator


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
