"""An app under gunicorn per test, on SQLite or on the Firestore emulator; and the
pages' test-client site with two signed-in visitors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pages_site import Site, Visitor
from tests.support.server import AppServer
from tests.support.stores import AppStarter, RunningApp, StoreUrls

__all__ = ["RunningApp"]


@pytest.fixture
def start_app(store_urls: StoreUrls) -> Iterator[AppStarter]:
    """Starts apps with extra settings, each on a fresh database of the test's store."""
    starter = AppStarter(store_urls)
    yield starter
    starter.stop_all()


@pytest.fixture
def running_app(start_app: AppStarter) -> RunningApp:
    return start_app({})


@pytest.fixture
def quiet_app() -> Iterator[AppServer]:
    """One gunicorn server on SQLite whose sandbox sends no events: the test sends them."""
    server = AppServer({"SANDBOX_WEBHOOKS": "off"}).start()
    yield server
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
