"""Request limits over real HTTP: per user when signed in, per address when signed out,
a 429 in the JSON error shape with Retry-After, nothing changed, the webhook never limited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from werkzeug.test import TestResponse

from api.http.limits import GROUPS
from api.json_api.openapi import SPEC_PATH
from services.store import open_store
from tests.integration.test_openapi import spec_path
from tests.support.pages_site import Site, Visitor, form_field, text
from tests.support.purchases import Buyer, charge_event, send
from tests.support.server import AppServer
from tests.support.stores import grant

TIGHT = {
    "RATELIMIT_SIGNIN": "3 per minute",
    "RATELIMIT_WRITES": "3 per minute",
    "RATELIMIT_ADMIN": "2 per minute",
    "OPERATOR_EMAILS": "ops@example.com",
}


@pytest.fixture
def server() -> Iterator[AppServer]:
    started = AppServer(TIGHT).start()
    yield started
    started.stop()


def spend(buyer: Buyer) -> requests.Response:
    return buyer.post(
        "/api/tokens/spend",
        json={"amount": 1, "reason": "render"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def assert_limited(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body == {"success": False, "error": body["error"], "code": "rate_limited"}
    assert "too many requests" in body["error"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_writes_are_limited_per_user_and_a_refusal_changes_nothing(server: AppServer) -> None:
    first, second = Buyer(server.url, "first@example.com"), Buyer(server.url, "second@example.com")
    for buyer in (first, second):
        grant(server, buyer.user_id, 10)
    assert [spend(first).status_code for _ in range(3)] == [200, 200, 200]
    # Holds and tips share the writes budget with spending.
    hold = first.post("/api/tokens/holds", json={"amount": 1}, headers={"Idempotency-Key": "h"})
    assert_limited(hold)
    assert_limited(spend(first))
    assert first.balance() == 7
    assert len(first.history()) == 4
    # Another user from the same address has a budget of their own.
    assert [spend(second).status_code for _ in range(3)] == [200, 200, 200]
    assert second.balance() == 7


def test_sign_in_is_limited_per_address(server: AppServer) -> None:
    for n in range(3):
        Buyer(server.url, f"visitor{n}@example.com")
    refused = requests.post(
        f"{server.url}/auth/dev-login",
        json={"email": "late@example.com"},
        # Without a trusted proxy, a forwarded-for header is the client's own claim.
        headers={"X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    assert_limited(refused)
    assert open_store(server.env["STORE_URL"]).find_user_by_email("late@example.com") is None


def test_admin_actions_are_limited_per_operator(server: AppServer) -> None:
    customer = Buyer(server.url, "customer@example.com", username="customer")
    ops = Buyer(server.url, "ops@example.com")

    def grant_one(n: int) -> requests.Response:
        return ops.post(
            "/admin/api/grants",
            json={"user": "@customer", "amount": 5, "reason": "sorry"},
            headers={"Idempotency-Key": f"ticket-{n}"},
        )

    assert [grant_one(n).status_code for n in range(2)] == [200, 200]
    assert_limited(grant_one(2))
    assert customer.balance() == 10


def test_the_webhook_is_never_limited(server: AppServer) -> None:
    answers = [
        send(server.url, charge_event(f"pi_unknown_{n}", 999, 999)).status_code for n in range(8)
    ]
    assert answers == [200] * 8


def test_a_page_over_its_limit_gets_a_readable_page(tmp_path: Path) -> None:
    site = Site(tmp_path, RATELIMIT_WRITES="1 per minute")
    try:
        alice, bob = (
            site.signed_in("alice@example.com", "alice"),
            site.signed_in("bob@example.com", "bob"),
        )
        site.grant(alice.user_id, 100, "start")
        assert tip_form(alice, "bob", "k1").status_code == 303
        refused = tip_form(alice, "bob", "k2")
        assert refused.status_code == 429
        assert refused.mimetype == "text/html"
        assert "Too many requests" in text(refused)
        assert "try again in" in text(refused)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (99, 1)
    finally:
        site.close()


def tip_form(visitor: Visitor, recipient: str, key: str) -> TestResponse:
    page = text(visitor.get("/tokens/history"))
    form = {
        "csrf_token": form_field(page, "csrf_token"),
        "idempotency_key": key,
        "recipient": recipient,
        "amount": "1",
        "note": "thanks",
    }
    return visitor.post("/tokens/tip", data=form)


def test_behind_a_proxy_each_forwarded_address_has_its_own_budget(tmp_path: Path) -> None:
    site = Site(tmp_path, RATELIMIT_SIGNIN="1 per minute", RATELIMIT_PROXY_HOPS="1")
    try:

        def sign_in(client_ip: str) -> int:
            # The proxy appends the address it saw; what the client wrote before it is ignored.
            forwarded = f"198.51.100.1, {client_ip}"
            response = site.visitor().client.post(
                "/auth/dev-login",
                json={"email": f"{uuid.uuid4().hex[:8]}@example.com"},
                headers={"X-Forwarded-For": forwarded},
            )
            return response.status_code

        assert [sign_in("203.0.113.1"), sign_in("203.0.113.2")] == [200, 200]
        assert sign_in("203.0.113.1") == 429
    finally:
        site.close()


def test_every_write_route_but_the_webhook_and_sandbox_is_limited(tmp_path: Path) -> None:
    site = Site(tmp_path)
    try:
        limited = {endpoint for endpoints in GROUPS.values() for endpoint in endpoints}
        writes = {
            rule.endpoint
            for rule in site.app.url_map.iter_rules()
            if "POST" in (rule.methods or set())
        }
        unlimited = {"stripe_webhook.webhook", "auth.logout"}
        sandbox = {e for e in writes if e.startswith("sandbox.")}
        assert writes - unlimited - sandbox == limited
    finally:
        site.close()


def test_every_limited_json_route_documents_its_429(tmp_path: Path) -> None:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    site = Site(tmp_path)
    try:
        limited = {endpoint for endpoints in GROUPS.values() for endpoint in endpoints}
        undocumented = [
            (method, rule.rule)
            for rule in site.app.url_map.iter_rules()
            if rule.endpoint in limited and not rule.endpoint.startswith(("pages.", "admin_pages."))
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
            if "429" not in spec["paths"][spec_path(rule.rule)][method.lower()]["responses"]
        ]
        assert not undocumented
    finally:
        site.close()
