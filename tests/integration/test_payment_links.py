"""Payment Link sessions, and a provider that does not answer, over HTTP on both stores.

The app runs in Stripe mode against the fake Stripe API: a session the app did
not create is adopted only in ``mode=payment`` from a link in PAYMENT_LINKS,
for the pack whose price id is on the session's one line item (retrieved with
``line_items`` expanded; events never carry them). A provider that does not
answer is a 5xx, and Stripe's next delivery goes through. The last test has an
early fraud warning on such a purchase meet a refund whose answers are lost.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from api.json_api.openapi import SPEC_PATH
from config.catalog import DEFAULT_PACKS
from services.payments.checkout import PRICE_IDS_SETTING
from services.payments.stripe_gateway import MAX_NETWORK_RETRIES
from tests.integration.conftest import RunningApp
from tests.support.fake_stripe_api import FakeStripeApi, running_fake
from tests.support.fraud_warnings import warning_event
from tests.support.purchases import charge_event, event, send, session_object
from tests.support.stores import AppStarter
from tests.support.stripe_fixtures import fixture

SECRET = "whsec_payment_links_test"
LINKS = ("plink_tokens_a", "plink_tokens_b")

fake_stripe = pytest.fixture(running_fake)
WEBHOOK = schemathesis.openapi.from_path(SPEC_PATH)["/api/stripe/webhook"]["POST"]


@pytest.fixture
def stripe_app(start_app: AppStarter, fake_stripe: FakeStripeApi, tmp_path: Path) -> RunningApp:
    catalog = tmp_path / "catalog.json"
    packs = [{**p, "stripe_price_id": f"price_tokens_{p['id']}"} for p in DEFAULT_PACKS]
    catalog.write_text(json.dumps({"currency": "usd", "packages": packs}))
    return start_app(
        {
            "STRIPE_SECRET_KEY": "sk_test_payment_links",
            "STRIPE_API_BASE": fake_stripe.url,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "PAYMENT_LINKS": ",".join(LINKS),
            "TOKEN_CATALOG_FILE": str(catalog),
        }
    )


def link_session(
    fake: FakeStripeApi,
    *,
    link: str | None = LINKS[0],
    price: str = "price_tokens_popular",
    quantity: int = 1,
    mode: str = "payment",
) -> dict[str, Any]:
    """A paid session of ``link`` for the popular pack's amount, as the provider keeps it."""
    session_id = f"cs_test_link_{uuid.uuid4().hex[:16]}"
    user = f"uid-{uuid.uuid4().hex[:8]}"
    obj = session_object(session_id, "unused", user, metadata={}, payment_link=link, mode=mode)
    fake.add("checkout.session", **obj)
    unit = fixture("price", id=price, unit_amount=999, currency="usd", type="one_time")
    item = fixture(
        "line_item",
        id=f"li_{session_id[-12:]}",
        price={**unit, "recurring": None},
        quantity=quantity,
        currency="usd",
        amount_total=999 * quantity,
    )
    fake.line_items[session_id] = [item]
    return obj


def completed(app: RunningApp, obj: dict[str, Any], event_id: str | None = None) -> Any:
    return send(app.url, event("checkout.session.completed", obj, event_id), secret=SECRET)


def balance(app: RunningApp, user_id: str) -> int:
    """0 too for a user who has no account: nothing was ever credited to them."""
    account = app.store.get_accounts([user_id]).get(user_id)
    return 0 if account is None else account.balance


def alert_types(app: RunningApp) -> list[str]:
    return [a.type for a in app.store.list_alerts()]


def test_a_session_from_a_named_link_with_a_pack_price_is_credited_once(
    stripe_app: RunningApp, fake_stripe: FakeStripeApi
) -> None:
    obj = link_session(fake_stripe)
    user = obj["client_reference_id"]
    first = completed(stripe_app, obj)
    assert (first.status_code, first.json()["outcome"]) == (200, "paid")
    retrieved = fake_stripe.last("GET", f"/v1/checkout/sessions/{obj['id']}")
    assert retrieved.params.get("expand") == ["line_items"]
    assert completed(stripe_app, obj).json()["outcome"] == "paid"  # another delivery
    purchase = stripe_app.store.find_purchase(session_id=obj["id"])
    assert purchase is not None
    assert (purchase.source, purchase.pack_id, purchase.tokens) == ("payment_link", "popular", 110)
    assert balance(stripe_app, user) == 110


def test_a_price_recorded_by_sync_stripe_names_its_pack_too(
    stripe_app: RunningApp, fake_stripe: FakeStripeApi
) -> None:
    synced = {"price_id": "price_synced_popular", "amount": 999, "currency": "usd"}
    stripe_app.store.put_setting(PRICE_IDS_SETTING, {"popular": synced})
    obj = link_session(fake_stripe, price="price_synced_popular")
    assert completed(stripe_app, obj).json()["outcome"] == "paid"
    assert balance(stripe_app, obj["client_reference_id"]) == 110


@pytest.mark.parametrize(
    ("session", "outcome", "alert"),
    [
        ({"mode": "subscription"}, "no_purchase", "session_not_adopted"),
        ({"link": "plink_someone_elses"}, "no_purchase", "session_not_adopted"),
        ({"link": None}, "no_purchase", "session_not_adopted"),
        ({"price": "price_not_a_pack"}, "needs_review", "purchase_needs_review"),
        ({"quantity": 2}, "needs_review", "purchase_needs_review"),
    ],
    ids=["subscription", "unknown-link", "no-link", "wrong-price", "two-packs"],
)
def test_other_sessions_are_not_credited(
    stripe_app: RunningApp,
    fake_stripe: FakeStripeApi,
    session: dict[str, Any],
    outcome: str,
    alert: str,
) -> None:
    obj = link_session(fake_stripe, **session)
    answer = completed(stripe_app, obj)
    assert (answer.status_code, answer.json()["outcome"]) == (200, outcome)
    assert balance(stripe_app, obj["client_reference_id"]) == 0
    assert alert in alert_types(stripe_app)
    stored = stripe_app.store.find_purchase(session_id=obj["id"])
    assert (stored is None) == (outcome == "no_purchase")


def test_a_provider_that_does_not_answer_is_a_5xx_then_the_redelivery_credits(
    stripe_app: RunningApp, fake_stripe: FakeStripeApi
) -> None:
    obj = link_session(fake_stripe)
    paid = event("checkout.session.completed", obj)
    fake_stripe.drop_next_responses(1 + MAX_NETWORK_RETRIES)
    failed = send(stripe_app.url, paid, secret=SECRET)
    assert failed.status_code == 503, failed.text
    WEBHOOK.validate_response(failed)  # payments_unavailable, with Retry-After
    assert not stripe_app.store.event_processed(paid["id"])
    assert stripe_app.store.find_purchase(session_id=obj["id"]) is None
    again = send(stripe_app.url, paid, secret=SECRET)
    assert (again.status_code, again.json()["outcome"]) == (200, "paid")
    assert balance(stripe_app, obj["client_reference_id"]) == 110


def test_a_fraud_warning_whose_refund_answer_is_lost_is_retried_and_refunds_once(
    stripe_app: RunningApp, fake_stripe: FakeStripeApi
) -> None:
    obj = link_session(fake_stripe)
    intent = obj["payment_intent"]
    fake_stripe.add(
        "payment_intent",
        id=intent,
        amount=999,
        amount_received=999,
        currency="usd",
        status="succeeded",
        latest_charge="ch_" + intent[3:],
    )
    assert completed(stripe_app, obj).json()["outcome"] == "paid"
    warning = warning_event(intent)
    fake_stripe.drop_next_responses(1 + MAX_NETWORK_RETRIES)  # made, every answer lost
    failed = send(stripe_app.url, warning, secret=SECRET)
    assert failed.status_code == 503, failed.text
    WEBHOOK.validate_response(failed)  # payments_unavailable, with Retry-After
    assert not stripe_app.store.event_processed(warning["id"])
    again = send(stripe_app.url, warning, secret=SECRET)
    assert (again.status_code, again.json()["outcome"]) == (200, "efw_refunded")
    refunds = fake_stripe.find("POST", "/v1/refunds")
    assert {r.idempotency_key for r in refunds} == {f"efw-{warning['data']['object']['id']}"}
    assert len(fake_stripe.objects["refunds"]) == 1
    # Stripe then reports the refund; the tokens go back through the usual path.
    refunded = send(stripe_app.url, charge_event(intent, 999, 999), secret=SECRET)
    assert refunded.json()["outcome"] == "refund_clawed_back"
    assert balance(stripe_app, obj["client_reference_id"]) == 0
