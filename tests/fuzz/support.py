"""What the fuzz suites share: example counts, sandbox purchases and the ledger's invariants.

``make test`` runs a bounded, reproducible number of examples. Two environment
variables make longer runs (``make soak``):

- ``FUZZ_EXAMPLES``: examples per operation, and sequences, for schemathesis;
- ``FUZZ_WEBHOOK_EXAMPLES``: signed events for the webhook property;
- ``FUZZ_SEED``: a seed instead of Hypothesis's derandomized runs, so that each
  soak run explores other inputs; rerun a failure with the same seed (the
  linked sequences are then random, and a failure prints Hypothesis's
  ``@reproduce_failure`` blob instead).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import requests
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed

from config.catalog import Catalog, load_catalog
from services.ledger.model import TxnType
from services.payments.model import PurchaseState
from services.store.port import Store
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer, tokens_cli

CARD_PAYS = "4242 4242 4242 4242"


def examples(default: int, variable: str = "FUZZ_EXAMPLES") -> int:
    """The environment ``variable`` when set (a longer run), else ``default``."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"{variable} must be a positive whole number, got {value!r}")
    return int(value)


def seed() -> int | None:
    """``FUZZ_SEED`` when set; None keeps runs derandomized (the same inputs every run)."""
    value = os.environ.get("FUZZ_SEED", "").strip()
    return int(value) if value else None


def seeded(test: Callable[[], None]) -> Callable[[], None]:
    """``test`` with ``FUZZ_SEED`` as its seed, when one is set."""
    value = seed()
    return test if value is None else hypothesis_seed(value)(test)


def hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,  # a request to a busy shared machine may take a while
        derandomize=seed() is None,
        database=None,  # reproducible from the code and the seed alone
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )


def pay_in_sandbox(server: AppServer, buyer: Buyer, pack: str, key: str) -> dict[str, Any]:
    """Buy ``pack`` the way a person does: hosted checkout, the test card, the webhook.

    ``key`` is the checkout's Idempotency-Key, so the purchase id is known in advance.
    """
    before = buyer.balance()
    response = buyer.post(
        "/api/tokens/create-checkout-session",
        json={"package": pack},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    paid = buyer.pay_on_checkout_page(started["url"], CARD_PAYS)
    assert paid.status_code == 303, paid.text
    tokens = load_catalog(None).get(pack)
    assert tokens is not None
    wait_for(lambda: buyer.balance() == before + tokens.tokens, f"the {pack} pack's credit")
    return started


def pending_deliveries(server: AppServer) -> int:
    return int(requests.get(f"{server.url}/sandbox/deliveries", timeout=10).json()["pending"])


def history(buyer: Buyer) -> list[dict[str, Any]]:
    """Every entry of the buyer's history, following ``next_cursor`` to the last page."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = buyer.get("/api/tokens/transactions", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        entries += body["transactions"]
        cursor = body["next_cursor"]
        if cursor is None:
            return entries


def assert_accounts_add_up(buyers: list[Buyer]) -> None:
    """Through the API: no balance or debt below zero, and each history sums to its balance."""
    for buyer in buyers:
        balance = buyer.get("/api/tokens/balance").json()
        assert balance["balance"] >= 0 and balance["debt"] >= 0, balance
        assert 0 <= balance["available"] <= balance["balance"], balance
        entries = history(buyer)
        assert sum(e["amount"] for e in entries) == balance["balance"], (buyer.user_id, balance)
        assert all(e["balance_after"] >= 0 for e in entries)
        ids = [e["id"] for e in entries]
        assert len(ids) == len(set(ids)), "a page boundary repeated an entry"


def assert_reconciles(server: AppServer) -> None:
    result = tokens_cli(server.env, "reconcile", "--no-provider")
    assert result.returncode == 0, result.stdout + result.stderr


def assert_purchases_credited_once_for_their_pack(store: Store, catalog: Catalog) -> None:
    """Every credited purchase: one purchase credit, for its pack's tokens, at its pack's price."""
    credits: dict[str, list[int]] = {}
    for txn in store.iter_transactions():
        if txn.type is TxnType.PURCHASE and "purchase_id" in txn.refs:
            credited = sum(e.amount for e in txn.entries if e.user_id is not None)
            credits.setdefault(txn.refs["purchase_id"], []).append(credited)
    for purchase in store.iter_purchases():
        found = credits.pop(purchase.id, [])
        if purchase.state is not PurchaseState.PAID:
            assert found == [], (purchase.id, purchase.state, found)
            continue
        pack = catalog.get(purchase.pack_id)
        assert pack is not None, purchase
        assert (purchase.tokens, purchase.amount, purchase.currency) == (
            pack.tokens,
            pack.price_cents,
            pack.currency,
        ), purchase
        assert found == [pack.tokens], (purchase.id, found)
    assert credits == {}, f"credits without a purchase record: {credits}"
