"""Every contract test runs once per store: SQLite and the Firestore emulator.

``store_factory`` makes further store objects on the same data, standing for
other server processes: each has its own connections (and, on Firestore, its
own client and in-process locks), so races between them reach the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from services.store import open_store
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.stores import StoreUrls

StoreFactory = Callable[[], Store]


@pytest.fixture
def store_factory(store_urls: StoreUrls) -> Iterator[StoreFactory]:
    url = store_urls.new(busy_timeout_ms=None)
    made: list[Store] = []

    def make() -> Store:
        made.append(open_store(url))
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
