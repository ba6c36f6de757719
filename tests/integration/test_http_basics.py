"""The app under gunicorn: probes, the package catalog and start-up refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.firestore_emulator import FirestoreEmulator, free_port
from tests.support.server import AppServer


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[AppServer]:
    server = AppServer({"STORE_URL": f"sqlite:///{tmp_path}/tokens.db"}).start()
    yield server
    server.stop()


def test_probes_and_packages_on_sqlite(sandbox_server: AppServer) -> None:
    url = sandbox_server.url
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"success": True, "status": "ok"}
    ready = requests.get(f"{url}/readyz", timeout=5)
    assert (ready.status_code, ready.json()["store"]) == (200, "sqlite")
    body = requests.get(f"{url}/api/tokens/packages", timeout=5).json()
    assert body["success"] is True
    popular = next(p for p in body["packages"] if p["id"] == "popular")
    assert popular == {
        "id": "popular",
        "name": "Popular",
        "tokens": 110,
        "bonus": 10,
        "price": "9.99",
        "price_cents": 999,
        "currency": "usd",
        "description": "100 tokens plus 10 bonus tokens.",
        "badge": "MOST POPULAR",
        "available": True,
    }
    assert [p["id"] for p in body["packages"]] == ["starter", "popular", "pro", "creator"]


def test_unknown_api_paths_answer_in_the_json_error_shape(sandbox_server: AppServer) -> None:
    response = requests.get(f"{sandbox_server.url}/api/tokens/nothing-here", timeout=5)
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert response.json()["code"] == "not_found"


def test_an_operator_catalog_file_is_served(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "currency": "eur",
                "packages": [{"id": "solo", "name": "Solo", "tokens": 30, "price_cents": 300}],
            }
        )
    )
    server = AppServer(
        {"STORE_URL": f"sqlite:///{tmp_path}/t.db", "TOKEN_CATALOG_FILE": str(catalog)}
    ).start()
    try:
        packs = requests.get(f"{server.url}/api/tokens/packages", timeout=5).json()["packages"]
        assert [(p["id"], p["price"], p["currency"]) for p in packs] == [("solo", "3.00", "eur")]
    finally:
        server.stop()


def test_a_bad_catalog_entry_stops_start_up_naming_it(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "packages": [
                    {"id": "ok", "name": "Ok", "tokens": 5, "price_cents": 100},
                    {"id": "broken", "name": "Broken", "tokens": 5, "price_cents": -1},
                ]
            }
        )
    )
    returncode, output = refused_start({"TOKEN_CATALOG_FILE": str(catalog)})
    assert returncode != 0
    assert "package 'broken': price_cents must be" in output


def test_production_refuses_the_development_defaults() -> None:
    returncode, output = refused_start({"APP_ENV": "production"})
    assert returncode != 0
    for problem in (
        "STRIPE_SECRET_KEY is not set: production cannot use sandbox payments",
        "the sandbox also enables dev sign-in",
        "SECRET_KEY is not set",
        "STRIPE_WEBHOOK_SECRET is not set",
        "STORE_URL is SQLite",
        "FIREBASE_PROJECT_ID is not set",
    ):
        assert problem in output, problem


def refused_start(env: dict[str, str]) -> tuple[int, str]:
    """Launch gunicorn expecting it to exit; its exit code and output."""
    server = AppServer(env)
    process = server.launch_one(0)
    process.wait(timeout=30)
    output = server.output()
    server.stop()
    return process.returncode, output


def test_readiness_follows_firestore(firestore_emulator: FirestoreEmulator) -> None:
    live = AppServer({"STORE_URL": "firestore://demo-ready"}).start()
    dead = AppServer(
        {
            "STORE_URL": "firestore://demo-ready",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
        }
    ).start()
    try:
        assert requests.get(f"{live.url}/readyz", timeout=10).status_code == 200
        down = requests.get(f"{dead.url}/readyz", timeout=30)
        assert down.status_code == 503
        assert down.json()["code"] == "storage_unavailable"
        assert requests.get(f"{dead.url}/healthz", timeout=5).status_code == 200
    finally:
        live.stop()
        dead.stop()
