"""`flask tokens refund` through the sandbox: the provider refunds, the webhook claws back."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from services.operations.model import AuditRecord
from tests.support.cli import tokens_in_process
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer, tokens_cli
from tests.support.stores import opened


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def flask_cli(server: AppServer, *args: str) -> subprocess.CompletedProcess[str]:
    return tokens_cli(server.env, *args)


def bought_and_spent(server: AppServer, spent: int) -> tuple[Buyer, str]:
    buyer = Buyer(server.url, f"refund-{uuid.uuid4().hex[:6]}@example.com")
    started = buyer.checkout("popular")
    buyer.pay_on_checkout_page(started["url"])
    wait_for(lambda: buyer.balance() == 110, "the purchase to be credited")
    response = buyer.post(
        "/api/tokens/spend", json={"amount": spent}, headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 200
    return buyer, started["purchase_id"]


def audit_of(server: AppServer, purchase_id: str) -> list[AuditRecord]:
    with opened(server) as store:
        return store.list_audit(10, target=f"purchase:{purchase_id}")


def test_the_default_refund_is_what_the_unspent_tokens_cover(app: AppServer) -> None:
    buyer, purchase_id = bought_and_spent(app, 100)
    result = flask_cli(app, "refund", purchase_id, "--operator", "ops-1")
    assert result.returncode == 0, result.stderr
    assert "10 unspent tokens cover a refund of at most 99; refunding 99" in result.stdout
    assert [(r.admin_id, r.details["amount"]) for r in audit_of(app, purchase_id)] == [
        ("cli:ops-1", 99)
    ]
    wait_for(lambda: buyer.pending_deliveries() == 0, "the charge.refunded event to be delivered")
    assert buyer.get("/api/tokens/balance").json() == {
        "success": True,
        "balance": 0,
        "debt": 0,
        "status": "active",
        "available": 0,
        "held": 0,
    }


def test_more_than_covered_needs_force_and_then_records_debt(app: AppServer) -> None:
    buyer, purchase_id = bought_and_spent(app, 100)
    refused = flask_cli(app, "refund", purchase_id, "--amount", "999")
    assert refused.returncode != 0
    assert "use --force" in refused.stderr
    assert buyer.balance() == 10
    forced = flask_cli(app, "refund", purchase_id, "--amount", "999", "--force")
    assert forced.returncode == 0, forced.stderr
    wait_for(lambda: buyer.pending_deliveries() == 0, "the charge.refunded event to be delivered")
    assert buyer.get("/api/tokens/balance").json() == {
        "success": True,
        "balance": 0,
        "debt": 100,
        "status": "debt",
        "available": 0,
        "held": 0,
    }
    again = flask_cli(app, "refund", purchase_id)
    assert again.returncode != 0
    assert "refunded in full" in again.stderr


def test_unknown_and_unpaid_purchases_are_refused(app: AppServer) -> None:
    assert "no purchase" in tokens_in_process(app.env, "refund", "pur_missing").stderr
    buyer = Buyer(app.url, "unpaid@example.com")
    started = buyer.checkout("starter")
    refused = tokens_in_process(app.env, "refund", started["purchase_id"])
    assert "not a paid payment" in refused.stderr
