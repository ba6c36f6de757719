"""Metered usage over HTTP against the running app, on both stores: a call billed by the minute."""

from __future__ import annotations

from typing import Any

import requests

from tests.integration.conftest import RunningApp
from tests.support.purchases import Buyer, buy
from tests.support.server import AppServer

USAGE = "/api/tokens/usage"


def charge(buyer: Buyer, session_id: str, amount: int, key: str | None) -> requests.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    body = {"amount": amount, "reason": f"minute {key}"}
    return buyer.post(f"{USAGE}/{session_id}/charges", json=body, headers=headers)


def error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def balance(buyer: Buyer) -> dict[str, Any]:
    body: dict[str, Any] = buyer.get("/api/tokens/balance").json()
    return body


def test_a_call_billed_by_the_minute(running_app: RunningApp) -> None:
    caller = Buyer(running_app.url, "caller@example.com")
    buy(running_app.url, caller)  # the popular pack: 110 tokens
    started = caller.post(
        USAGE, json={"amount": 30, "reason": "call"}, headers={"Idempotency-Key": "call-1"}
    ).json()
    sid = started["session_id"]
    assert (started["state"], started["reserved"], started["remaining"]) == ("open", 30, 30)
    assert started["available"] == 80 and balance(caller)["held"] == 30

    first = charge(caller, sid, 10, "1").json()
    assert (first["captured"], first["remaining"], first["balance"]) == (10, 20, 100)
    assert charge(caller, sid, 10, "1").json() == first  # a retried minute
    assert error(charge(caller, sid, 11, "1")) == (409, "idempotency_conflict")
    assert error(charge(caller, sid, 21, "2")) == (409, "reserve_exceeded")
    assert error(charge(caller, sid, 1, None)) == (400, "invalid_idempotency_key")

    top_up = f"{USAGE}/{sid}/top-up"
    too_much = caller.post(top_up, json={"amount": 81}, headers={"Idempotency-Key": "more"})
    assert error(too_much) == (402, "insufficient_tokens")
    more = caller.post(
        top_up, json={"amount": 20, "ttl_seconds": 1200}, headers={"Idempotency-Key": "more"}
    ).json()
    assert (more["amount"], more["remaining"]) == (20, 40)
    assert more["expires_at"] > started["expires_at"]
    looked = caller.get(f"{USAGE}/{sid}").json()
    assert (looked["state"], looked["reserved"], looked["captured"]) == ("open", 50, 10)

    closed = caller.post(f"{USAGE}/{sid}/close").json()
    assert (closed["captured"], closed["released"], closed["balance"]) == (10, 40, 100)
    assert caller.post(f"{USAGE}/{sid}/close").json() == closed
    assert error(charge(caller, sid, 1, "3")) == (404, "usage_session_not_found")
    assert caller.get(f"{USAGE}/{sid}").json()["state"] == "closed"
    assert (balance(caller)["available"], balance(caller)["held"]) == (100, 0)

    described = [t["description"] for t in caller.history()[:4]]
    assert described == [
        "Metered use ended: unused reserved tokens released",
        "More tokens reserved for metered use",
        "Metered use: 10 tokens (minute 1)",
        "Tokens reserved for metered use (call)",
    ]


def test_sessions_are_private_and_ids_checked(running_app: RunningApp) -> None:
    owner = Buyer(running_app.url, "owner@example.com")
    other = Buyer(running_app.url, "other@example.com")
    buy(running_app.url, owner)
    sid = owner.post(USAGE, json={"amount": 5}, headers={"Idempotency-Key": "c"}).json()[
        "session_id"
    ]
    assert error(other.get(f"{USAGE}/{sid}")) == (404, "usage_session_not_found")
    assert error(charge(other, sid, 1, "x")) == (404, "usage_session_not_found")
    assert error(other.post(f"{USAGE}/{sid}/close")) == (404, "usage_session_not_found")
    assert error(owner.get(f"{USAGE}/not-a-session")) == (404, "usage_session_not_found")
    assert error(
        owner.post(USAGE, json={"amount": 5, "ttl_seconds": 0}, headers={"Idempotency-Key": "d"})
    ) == (400, "invalid_amount")
    assert owner.get(f"{USAGE}/{sid}").json()["remaining"] == 5


def test_usage_writes_share_the_write_limit_and_a_refused_charge_changes_nothing() -> None:
    server = AppServer({"RATELIMIT_WRITES": "3 per minute"}).start()
    try:
        caller = Buyer(server.url, "limited@example.com")
        buy(server.url, caller)
        sid = caller.post(USAGE, json={"amount": 20}, headers={"Idempotency-Key": "c"}).json()[
            "session_id"
        ]
        assert charge(caller, sid, 5, "1").status_code == 200
        assert charge(caller, sid, 5, "2").status_code == 200
        refused = charge(caller, sid, 5, "3")
        assert error(refused) == (429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        assert error(caller.post(f"{USAGE}/{sid}/close")) == (429, "rate_limited")
        looked = caller.get(f"{USAGE}/{sid}").json()  # reading is not a write
        assert (looked["state"], looked["captured"]) == ("open", 10)
    finally:
        server.stop()
