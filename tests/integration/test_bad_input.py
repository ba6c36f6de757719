"""Bad input over real HTTP is a 4xx in the JSON error shape and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.purchases import Buyer
from tests.support.server import AppServer
from tests.support.stores import grant


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    started = AppServer({"STORE_URL": f"sqlite:///{tmp_path}/tokens.db"}).start()
    yield started
    started.stop()


def _entries(buyer: Buyer) -> list[dict[str, object]]:
    return buyer.history()


def test_releasing_another_users_settled_hold_is_a_404(server: AppServer) -> None:
    owner = Buyer(server.url, "owner@example.com")
    other = Buyer(server.url, "other@example.com")
    grant(server, owner.user_id, 50)
    grant(server, other.user_id, 50)
    hold = owner.post(
        "/api/tokens/holds", json={"amount": 20}, headers={"Idempotency-Key": "h1"}
    ).json()["hold_id"]
    assert owner.post(f"/api/tokens/holds/{hold}/release").status_code == 200
    before = (owner.history(), other.history())
    response = other.post(f"/api/tokens/holds/{hold}/release")
    assert response.status_code == 404, response.text
    assert response.json() == {
        "success": False,
        "error": response.json()["error"],
        "code": "hold_not_found",
    }
    assert (owner.history(), other.history()) == before
    assert (owner.balance(), other.balance()) == (50, 50)


NESTED = {
    "lists-1000": "[" * 1000 + "]" * 1000,
    "lists-100000": "[" * 100_000 + "]" * 100_000,
    "objects-1000": '{"a":' * 1000 + "1" + "}" * 1000,
    "inside-a-field": '{"amount": 1, "reason": ' + "[" * 990 + "]" * 990 + "}",
}


@pytest.mark.parametrize("body", NESTED.values(), ids=NESTED.keys())
def test_deeply_nested_json_is_a_400(server: AppServer, body: str) -> None:
    buyer = Buyer(server.url, "nested@example.com")
    grant(server, buyer.user_id, 10)
    for path in ("/api/tokens/spend", "/api/tokens/holds", "/api/tokens/transfer"):
        response = buyer.post(
            path, data=body, headers={"Content-Type": "application/json", "Idempotency-Key": "n1"}
        )
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert response.json()["success"] is False
        assert response.json()["code"] == "invalid_payload"
    assert buyer.balance() == 10
    assert len(_entries(buyer)) == 1


def test_another_users_open_hold_can_be_neither_captured_nor_released(server: AppServer) -> None:
    owner = Buyer(server.url, "holder@example.com")
    other = Buyer(server.url, "stranger@example.com")
    grant(server, owner.user_id, 50)
    hold = owner.post(
        "/api/tokens/holds", json={"amount": 20}, headers={"Idempotency-Key": "h2"}
    ).json()["hold_id"]
    for action, body in (("capture", {"amount": 5}), ("release", None)):
        response = other.post(f"/api/tokens/holds/{hold}/{action}", json=body)
        assert (response.status_code, response.json()["code"]) == (404, "hold_not_found")
    assert owner.get("/api/tokens/balance").json()["held"] == 20
    captured = owner.post(f"/api/tokens/holds/{hold}/capture", json={"amount": 5})
    assert captured.status_code == 200, captured.text
