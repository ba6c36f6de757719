"""The two stores a store-parametrised test runs on: SQLite and the Firestore emulator.

``store_kind`` (a fixture of tests/conftest.py) runs a test once per store, with the
ids ``[sqlite]`` and ``[firestore]``, starting the emulator for the second;
``store_urls`` hands out fresh, empty databases of that kind; ``start_app`` (in
tests/integration/conftest.py) starts apps under gunicorn on them. ``opened`` opens a
running server's data in the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services.ledger.model import TxnType
from services.store import open_store
from services.store.port import Store
from services.tokens import TokenLedger
from tests.support.server import AppServer

STORE_KINDS = ("sqlite", "firestore")
SQLITE_BUSY_TIMEOUT_MS = 500


@dataclass
class StoreUrls:
    """STORE_URLs of new, empty databases of one kind: files in ``directory`` or projects."""

    kind: str
    directory: Path
    made: int = 0

    def new(self, busy_timeout_ms: int | None = SQLITE_BUSY_TIMEOUT_MS) -> str:
        """A fresh database; on SQLite ``busy_timeout_ms`` shortens the wait for a lock."""
        self.made += 1
        if self.kind == "firestore":
            return f"firestore://demo-{uuid.uuid4().hex[:12]}"
        name = "tokens.db" if self.made == 1 else f"tokens-{self.made}.db"
        query = "" if busy_timeout_ms is None else f"?busy_timeout_ms={busy_timeout_ms}"
        return f"sqlite:///{self.directory}/{name}{query}"


@dataclass
class RunningApp:
    server: AppServer
    store: Store  # the same data, opened by the test to inspect it
    kind: str

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class AppStarter:
    """Starts apps, each on a fresh database of ``urls``' kind, with extra settings."""

    urls: StoreUrls
    started: list[RunningApp] = field(default_factory=list)

    def __call__(self, env: dict[str, str]) -> RunningApp:
        url = self.urls.new()
        server = AppServer({"STORE_URL": url, **env}).start()
        app = RunningApp(server, open_store(url), self.urls.kind)
        self.started.append(app)
        return app

    def stop_all(self) -> None:
        for app in self.started:
            app.store.close()
            app.server.stop()
        self.started.clear()


@contextmanager
def opened(server: AppServer) -> Iterator[Store]:
    """The server's data, opened by the test to prepare or inspect it."""
    store = open_store(server.env["STORE_URL"])
    try:
        yield store
    finally:
        store.close()


def grant(server: AppServer, user_id: str, amount: int, key: str | None = None) -> None:
    """Tokens for ``user_id`` written straight to the server's store (``g:<user>`` by default)."""
    with opened(server) as store:
        TokenLedger(store).credit(user_id, amount, key=key or f"g:{user_id}", type=TxnType.GRANT)
