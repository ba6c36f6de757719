"""An app under gunicorn per test, on SQLite or on the Firestore emulator; and the
pages' test-client site with two signed-in visitors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.store import open_store
from services.store.port import Store
from tests.support.pages_site import Site, Visitor
from tests.support.server import AppServer


@dataclass
class RunningApp:
    server: AppServer
    store: Store  # the same data, opened by the test to inspect it
    kind: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(params=["sqlite", "firestore"])
def running_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningApp]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/tokens.db?busy_timeout_ms=500"
    else:
        request.getfixturevalue("firestore_emulator")
        url = f"firestore://demo-{uuid.uuid4().hex[:12]}"
    server = AppServer({"STORE_URL": url}).start()
    store = open_store(url)
    yield RunningApp(server, store, request.param)
    store.close()
    server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path)
    yield site
    site.close()


@pytest.fixture
def alice(site: Site) -> Visitor:
    visitor = site.signed_in("alice@example.com", "alice")
    site.grant(visitor.user_id, 100, "alice-start")
    return visitor


@pytest.fixture
def bob(site: Site) -> Visitor:
    return site.signed_in("bob@example.com", "bob")
