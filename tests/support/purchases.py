"""A signed-in buyer over real HTTP, and signed Stripe events built from Stripe's fixtures."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from config.settings import DEV_WEBHOOK_SECRET
from tests.support.site_client import SiteClient
from tests.support.stripe_fixtures import fixture
from tests.support.webhooks import WEBHOOK_PATH, delivery

WAIT_S = 20.0


class Buyer(SiteClient):
    """A browser-like client signed in through the development sign-in."""

    def __init__(self, base_url: str, email: str, username: str | None = None) -> None:
        super().__init__(base_url)
        self.signed_in(self.dev_login(email, username).json())

    def checkout(self, package: str = "popular") -> dict[str, Any]:
        response = self.post("/api/tokens/create-checkout-session", json={"package": package})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def balance(self) -> int:
        return int(self.get("/api/tokens/balance").json()["balance"])

    def history(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/api/tokens/transactions?limit=100").json()[
            "transactions"
        ]
        return items


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def session_object(
    session_id: str, purchase_id: str, user_id: str, **overrides: Any
) -> dict[str, Any]:
    """A paid checkout.session as Stripe sends it, for the popular pack (999 usd)."""
    values: dict[str, Any] = {
        "id": session_id,
        "payment_status": "paid",
        "status": "complete",
        "amount_total": 999,
        "amount_subtotal": 999,
        "currency": "usd",
        "client_reference_id": user_id,
        "metadata": {"purchase_id": purchase_id, "user_id": user_id, "pack_id": "popular"},
        "payment_intent": "pi_" + session_id[-20:],
    }
    values.update(overrides)
    return fixture("checkout.session", **values)


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return fixture(
        "event",
        id=event_id or f"evt_{obj['id'][-12:]}_{event_type.rsplit('.', 1)[-1]}_{time.time_ns()}",
        type=event_type,
        data={"object": obj},
    )


def send(
    base_url: str,
    body: dict[str, Any] | bytes,
    secret: str = DEV_WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> requests.Response:
    payload, headers = delivery(body, secret, timestamp, signature)
    return requests.post(f"{base_url}{WEBHOOK_PATH}", data=payload, headers=headers, timeout=60)


def buy(base_url: str, buyer: Buyer, package: str = "popular", **overrides: Any) -> dict[str, Any]:
    """Start a checkout and deliver its signed, paid `checkout.session.completed` event."""
    started = buyer.checkout(package)
    prices = {"starter": 499, "popular": 999, "pro": 1999, "creator": 4999}
    values: dict[str, Any] = {"amount_total": prices[package], "amount_subtotal": prices[package]}
    values.update(overrides)
    obj = session_object(
        started["session_id"],
        started["purchase_id"],
        overrides.pop("user_id", buyer.user_id),
        **values,
    )
    obj["metadata"]["pack_id"] = package
    response = send(base_url, event("checkout.session.completed", obj))
    assert response.status_code == 200, response.text
    return {**started, "payment_intent": obj["payment_intent"], "outcome": response.json()}


def charge_event(payment_intent: str, amount: int, amount_refunded: int) -> dict[str, Any]:
    charge = fixture(
        "charge",
        id="ch_" + payment_intent[3:],
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        currency="usd",
        refunded=amount_refunded >= amount,
    )
    return event("charge.refunded", charge)


def dispute_event(kind: str, payment_intent: str, amount: int, status: str) -> dict[str, Any]:
    dispute = fixture(
        "dispute",
        id="dp_" + payment_intent[3:],
        payment_intent=payment_intent,
        charge="ch_" + payment_intent[3:],
        amount=amount,
        currency="usd",
        status=status,
    )
    return event(kind, dispute)
