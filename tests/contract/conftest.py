"""Every contract test runs once per store: SQLite and the Firestore emulator.

``store_factory`` makes further store objects on the same data, standing for
other server processes: each has its own connections (and, on Firestore, its
own client and in-process locks), so races between them reach the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.store.firestore import FirestoreStore
from services.store.port import Store
from services.store.sqlite import SqliteStore
from services.tokens import TokenLedger
from tests.support.firestore_emulator import FirestoreEmulator

StoreFactory = Callable[[], Store]
PROJECT = "demo-contract"


@pytest.fixture(params=["sqlite", "firestore"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[Store] = []

    if request.param == "sqlite":

        def make() -> Store:
            made.append(SqliteStore(str(tmp_path / "ledger.db")))
            return made[-1]

    else:
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        emulator.clear(PROJECT)

        def make() -> Store:
            made.append(FirestoreStore(PROJECT))
            return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()


@pytest.fixture
def ledger(store: Store) -> TokenLedger:
    return TokenLedger(store)
