"""StripeService through the real stripe SDK against a local fake of api.stripe.com.

The assertions are on what goes over the wire: form params, idempotency keys,
the pinned API version, and on how Stripe's failures come back.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import pytest
import stripe

from config.catalog import Pack, load_catalog
from services.payments import port
from services.payments.errors import PaymentsError
from services.payments.stripe_gateway import STRIPE_API_VERSION, CheckoutSession, StripeService
from tests.support.fake_stripe_api import FakeStripeApi, RecordedRequest
from tests.support.stripe_fixtures import FIXTURES_PATH, FixturesNotFound, fixture, load_fixtures

SECRET = "sk_test_51FakeSecretKeyForTests0000000000"
SUCCESS_URL = "https://tokens.example/token-purchase-success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://tokens.example/tokens?cancelled=1"
EXPIRES_AT = 1_900_000_000
METADATA = {"purchase_id": "pur_1", "user_id": "user_1", "pack_id": "popular"}
POPULAR = Pack(
    id="popular",
    name="Popular",
    tokens=110,
    bonus=10,
    price_cents=999,
    currency="usd",
    description="100 tokens plus 10 bonus tokens.",
)


@pytest.fixture
def fake() -> Iterator[FakeStripeApi]:
    with FakeStripeApi() as api:
        yield api


@pytest.fixture
def service(fake: FakeStripeApi) -> StripeService:
    return StripeService(stripe, SECRET, api_base=fake.url)


def checkout(service: StripeService, pack: Pack = POPULAR, **changes: object) -> CheckoutSession:
    args: dict[str, object] = {
        "purchase_id": "pur_1",
        "pack": pack,
        "customer_id": "cus_123",
        "client_reference_id": "user_1",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "metadata": METADATA,
        "expires_at": EXPIRES_AT,
        **changes,
    }
    return service.create_checkout_session(**args)  # type: ignore[arg-type]


def assert_pinned(request: RecordedRequest) -> None:
    assert request.header("Stripe-Version") == STRIPE_API_VERSION
    assert request.header("Authorization") == f"Bearer {SECRET}"


# -- fixtures and version ------------------------------------------------------


def test_pinned_version_is_the_sdk_version() -> None:
    assert stripe.api_version == STRIPE_API_VERSION


def test_fixtures_are_stripe_objects_with_overrides() -> None:
    session = fixture("checkout.session", id="cs_test_1", metadata={"a": "b"})
    assert (session["object"], session["id"], session["metadata"]) == (
        "checkout.session",
        "cs_test_1",
        {"a": "b"},
    )
    assert fixture("checkout.session")["metadata"] == {}  # the stored copy is untouched
    assert {"checkout.session", "charge", "dispute", "event"} <= set(load_fixtures())


def test_missing_fixtures_file_says_where_it_looked() -> None:
    missing = FIXTURES_PATH.with_name("nope.json")
    with pytest.raises(FixturesNotFound, match=re.escape(str(missing))):
        load_fixtures(missing)


# -- checkout ------------------------------------------------------------------


def test_checkout_with_price_data_sends_the_servers_price(
    service: StripeService, fake: FakeStripeApi
) -> None:
    session = checkout(service)

    request = fake.last("POST", "/v1/checkout/sessions")
    assert request.params == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "999",
                    "product_data": {
                        "name": "Popular",
                        "description": "100 tokens plus 10 bonus tokens.",
                    },
                },
            }
        ],
        "client_reference_id": "user_1",
        "metadata": METADATA,
        "payment_intent_data": {"metadata": METADATA},
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "expires_at": str(EXPIRES_AT),
        "customer": "cus_123",
    }
    assert ("line_items[0][price_data][unit_amount]", "999") in request.pairs
    assert "{CHECKOUT_SESSION_ID}" in request.params["success_url"]
    assert request.idempotency_key == "checkout-pur_1"
    assert_pinned(request)
    assert session.id.startswith("cs_test_")
    assert session == CheckoutSession(
        id=session.id, url=f"https://checkout.stripe.com/c/pay/{session.id}", payment_intent=None
    )


def test_checkout_with_a_stripe_price_id(service: StripeService, fake: FakeStripeApi) -> None:
    pack = dataclasses.replace(POPULAR, stripe_price_id="price_123")
    checkout(service, pack, customer_id=None, purchase_id="pur_2")

    request = fake.last("POST", "/v1/checkout/sessions")
    assert request.params["line_items"] == [{"price": "price_123", "quantity": "1"}]
    assert "customer" not in request.params
    assert request.idempotency_key == "checkout-pur_2"


def test_checkout_for_the_same_purchase_is_the_same_session(service: StripeService) -> None:
    assert checkout(service) == checkout(service)
    assert checkout(service, purchase_id="pur_other").id != checkout(service).id


def test_retrieve_session_expands_line_items_and_returns_plain_dicts(
    service: StripeService, fake: FakeStripeApi
) -> None:
    created = checkout(service)

    session = service.retrieve_session(created.id)

    request = fake.last("GET", f"/v1/checkout/sessions/{created.id}")
    assert request.params == {"expand": ["line_items"]}
    assert ("expand[0]", "line_items") in request.pairs
    assert_pinned(request)
    assert type(session) is dict
    assert (session["id"], session["client_reference_id"], session["metadata"]) == (
        created.id,
        "user_1",
        METADATA,
    )
    line_items = session["line_items"]
    assert type(line_items) is dict
    assert line_items["object"] == "list"
    assert [type(item) for item in line_items["data"]] == [dict]
    assert line_items["data"][0]["amount_total"] == 999
    json.dumps(session)  # JSON-safe: no StripeObject, no Decimal


def test_the_service_is_the_apps_payments_gateway(service: StripeService) -> None:
    gateway: port.PaymentsGateway = service  # checked by mypy
    assert gateway.mode == "stripe"
    assert issubclass(PaymentsError, port.PaymentsError)  # caught by checkout and api/errors
    assert CheckoutSession is port.CheckoutSession


def test_missing_session_is_a_payments_error(service: StripeService, fake: FakeStripeApi) -> None:
    with pytest.raises(port.PaymentsError) as caught:
        service.retrieve_session("cs_test_missing")

    assert isinstance(caught.value, PaymentsError)

    assert caught.value.not_found
    assert (caught.value.transient, caught.value.http_status) == (False, 404)
    assert "cs_test_missing" in caught.value.message
    assert len(fake.find("GET", "/v1/checkout/sessions/cs_test_missing")) == 1  # 404: no retry


# -- customers -----------------------------------------------------------------


def test_customer_create_sends_key_and_metadata(
    service: StripeService, fake: FakeStripeApi
) -> None:
    customer_id = service.get_or_create_customer("user_1", "a@example.com", None)

    request = fake.last("POST", "/v1/customers")
    assert request.params == {"metadata": {"user_id": "user_1"}, "email": "a@example.com"}
    assert request.idempotency_key == "customer-user_1"
    assert_pinned(request)
    assert customer_id.startswith("cus_")
    assert service.get_or_create_customer("user_1", "a@example.com", None) == customer_id


def test_customer_without_email(service: StripeService, fake: FakeStripeApi) -> None:
    service.get_or_create_customer("user_2", None, None)
    assert fake.last("POST", "/v1/customers").params == {"metadata": {"user_id": "user_2"}}


def test_existing_customer_makes_no_call(service: StripeService, fake: FakeStripeApi) -> None:
    assert service.get_or_create_customer("user_1", "a@example.com", "cus_known") == "cus_known"
    assert fake.requests == []


# -- refunds and listings ------------------------------------------------------


def test_create_refund(service: StripeService, fake: FakeStripeApi) -> None:
    intent = fake.add("payment_intent", amount=999, latest_charge="ch_1")

    refund = service.create_refund(
        payment_intent=intent["id"],
        amount=500,
        idempotency_key="refund-pur_1-1",
        metadata={"purchase_id": "pur_1"},
    )

    request = fake.last("POST", "/v1/refunds")
    assert request.params == {
        "payment_intent": intent["id"],
        "amount": "500",
        "metadata": {"purchase_id": "pur_1"},
    }
    assert request.idempotency_key == "refund-pur_1-1"
    assert_pinned(request)
    assert type(refund) is dict
    assert (refund["object"], refund["amount"], refund["payment_intent"]) == (
        "refund",
        500,
        intent["id"],
    )


def test_full_refund_sends_no_amount(service: StripeService, fake: FakeStripeApi) -> None:
    intent = fake.add("payment_intent", amount=999, latest_charge="ch_1")
    refund = service.create_refund(
        payment_intent=intent["id"], amount=None, idempotency_key="refund-full", metadata={}
    )
    assert "amount" not in fake.last("POST", "/v1/refunds").params
    assert refund["amount"] == 999


def test_list_events_follows_every_page(service: StripeService, fake: FakeStripeApi) -> None:
    fake.page_size = 2
    fake.add("event", type="checkout.session.completed", created=100)  # too old
    fake.add("event", type="customer.created", created=1_001)  # other type
    wanted = [
        fake.add("event", type="checkout.session.completed", created=1_000 + i)["id"]
        for i in range(3)
    ]

    events = list(
        service.list_events(
            created_gte=1_000, types=["checkout.session.completed", "charge.refunded"]
        )
    )

    assert [event["id"] for event in events] == list(reversed(wanted))  # newest first
    assert all(type(event) is dict for event in events)
    first, second = fake.find("GET", "/v1/events")
    filters = {
        "created": {"gte": "1000"},
        "limit": "100",
        "types": ["checkout.session.completed", "charge.refunded"],
    }
    assert first.params == filters
    assert second.params == {**filters, "starting_after": events[1]["id"]}
    assert_pinned(first)
    assert_pinned(second)


def test_list_events_without_types(service: StripeService, fake: FakeStripeApi) -> None:
    fake.add("event", type="customer.created", created=2_000)
    assert len(list(service.list_events(created_gte=0))) == 1
    assert "types" not in fake.last("GET", "/v1/events").params


def test_list_payments(service: StripeService, fake: FakeStripeApi) -> None:
    fake.page_size = 1
    fake.add("payment_intent", created=10)
    recent = [fake.add("payment_intent", created=2_000 + i)["id"] for i in range(2)]

    payments = list(service.list_payments(created_gte=2_000))

    assert sorted(p["id"] for p in payments) == sorted(recent)
    assert [p["object"] for p in payments] == ["payment_intent"] * 2
    requests = fake.find("GET", "/v1/payment_intents")
    assert [r.params.get("starting_after") for r in requests] == [None, payments[0]["id"]]
    assert requests[0].params["created"] == {"gte": "2000"}


@pytest.mark.parametrize(("name", "path"), [("refund", "refunds"), ("dispute", "disputes")])
def test_list_refunds_and_disputes(
    service: StripeService, fake: FakeStripeApi, name: str, path: str
) -> None:
    """What ``tokens reconcile`` compares with the purchases: every page, from a time on."""
    fake.page_size = 1
    fake.add(name, created=10)
    recent = [fake.add(name, created=2_000 + i)["id"] for i in range(2)]
    lister = service.list_refunds if name == "refund" else service.list_disputes

    found = list(lister(created_gte=2_000))

    assert sorted(item["id"] for item in found) == sorted(recent)
    assert [item["object"] for item in found] == [name] * 2
    requests = fake.find("GET", f"/v1/{path}")
    assert [r.params.get("starting_after") for r in requests] == [None, found[0]["id"]]
    assert requests[0].params["created"] == {"gte": "2000"}
    assert_pinned(requests[0])


def test_a_failed_listing_is_a_payments_error(service: StripeService, fake: FakeStripeApi) -> None:
    fake.fail_next(1, status=400, message="bad filter")
    with pytest.raises(PaymentsError, match="bad filter") as caught:
        list(service.list_events(created_gte=0))
    assert not caught.value.transient


# -- catalog sync --------------------------------------------------------------


def test_sync_catalog_creates_then_finds_everything(
    service: StripeService, fake: FakeStripeApi
) -> None:
    catalog = load_catalog(None)

    first = service.sync_catalog(catalog)

    assert [(s.pack_id, s.product_id, s.action) for s in first] == [
        (pack.id, f"pack_{pack.id}", "created") for pack in catalog
    ]
    for pack, synced in zip(catalog, first, strict=True):
        product = fake.objects["products"][synced.product_id]
        price = fake.objects["prices"][synced.price_id]
        assert (product["name"], product["description"]) == (pack.name, pack.description)
        assert product["default_price"] == synced.price_id
        assert (price["product"], price["unit_amount"], price["currency"]) == (
            synced.product_id,
            pack.price_cents,
            pack.currency,
        )
    price_keys = [r.idempotency_key for r in fake.find("POST", "/v1/prices")]
    assert price_keys == [f"price-{p.id}-{p.price_cents}-{p.currency}" for p in catalog]
    product_creates = fake.find("POST", "/v1/products")
    assert [r.params["id"] for r in product_creates] == [f"pack_{p.id}" for p in catalog]
    assert all(r.idempotency_key for r in product_creates)
    assert all(r.header("Stripe-Version") == STRIPE_API_VERSION for r in fake.requests)

    fake.clear_requests()
    second = StripeService(stripe, SECRET, api_base=fake.url).sync_catalog(catalog)

    assert [dataclasses.replace(s, action="unchanged") for s in first] == second
    assert [r.method for r in fake.requests if r.method != "GET"] == []


def test_sync_catalog_follows_catalog_changes(service: StripeService, fake: FakeStripeApi) -> None:
    [old] = service.sync_catalog([POPULAR])
    repriced = dataclasses.replace(POPULAR, price_cents=1099)
    renamed = dataclasses.replace(POPULAR, name="Popular pack")

    [new_price] = service.sync_catalog([repriced])
    [new_name] = service.sync_catalog([renamed])

    assert new_price.action == "created"
    assert new_price.price_id != old.price_id
    assert (
        fake.objects["products"]["pack_popular"]["default_price"]
        == old.price_id
        == (new_name.price_id)
    )
    assert new_name.action == "updated"
    assert fake.objects["products"]["pack_popular"]["name"] == "Popular pack"
    assert fake.last("POST", "/v1/products/pack_popular").params == {"default_price": old.price_id}


# -- failures ------------------------------------------------------------------


def test_provider_failure_after_retries_hides_the_secret(
    service: StripeService, fake: FakeStripeApi
) -> None:
    fake.fail_next(3, status=500, message=f"upstream trouble for key {SECRET}")

    with pytest.raises(PaymentsError) as caught:
        checkout(service)

    attempts = fake.find("POST", "/v1/checkout/sessions")
    assert len(attempts) == 3  # the first try and the SDK's 2 retries
    assert {r.idempotency_key for r in attempts} == {"checkout-pur_1"}
    error = caught.value
    assert SECRET not in str(error)
    assert SECRET not in error.message
    assert "[redacted]" in error.message
    assert "HTTP 500" in error.message
    assert (error.transient, error.http_status, error.stripe_status) == (True, 503, 500)


def test_a_failure_the_retries_absorb(service: StripeService, fake: FakeStripeApi) -> None:
    fake.fail_next(2, status=503)
    session = checkout(service)
    assert len(fake.find("POST", "/v1/checkout/sessions")) == 3
    assert session.url.endswith(session.id)


def test_unreachable_stripe_is_a_transient_payments_error() -> None:
    with FakeStripeApi() as stopped:
        url = stopped.url
    service = StripeService(stripe, SECRET, api_base=url)
    with pytest.raises(PaymentsError) as caught:
        service.get_or_create_customer("user_1", None, None)
    assert caught.value.transient
    assert "APIConnectionError" in caught.value.message
    assert SECRET not in caught.value.message


# -- embedded payments ---------------------------------------------------------


def test_create_payment_intent_sends_the_pack_price_and_the_purchase_key(
    service: StripeService, fake: FakeStripeApi
) -> None:
    intent = service.create_payment_intent(
        purchase_id="pur_1", pack=POPULAR, customer_id="cus_123", metadata=METADATA
    )

    request = fake.last("POST", "/v1/payment_intents")
    assert request.params == {
        "amount": "999",
        "currency": "usd",
        "metadata": METADATA,
        "customer": "cus_123",
    }
    assert request.idempotency_key == "payment-intent-pur_1"
    assert_pinned(request)
    stored = fake.objects["payment_intents"][intent.id]
    assert (stored["amount"], stored["currency"]) == (999, "usd")
    assert intent == port.PaymentIntent(intent.id, stored["client_secret"])


def test_asking_twice_for_one_purchase_returns_one_payment_intent(
    service: StripeService, fake: FakeStripeApi
) -> None:
    first = service.create_payment_intent(
        purchase_id="pur_1", pack=POPULAR, customer_id=None, metadata=METADATA
    )
    again = service.create_payment_intent(
        purchase_id="pur_1", pack=POPULAR, customer_id=None, metadata=METADATA
    )
    assert again == first
    assert len(fake.objects["payment_intents"]) == 1
    assert "customer" not in fake.last("POST", "/v1/payment_intents").params


def test_retrieve_payment_intent_returns_a_plain_dict(
    service: StripeService, fake: FakeStripeApi
) -> None:
    created = fake.add("payment_intent", amount=999, status="succeeded", amount_received=999)
    intent = service.retrieve_payment_intent(created["id"])
    assert type(intent) is dict
    assert (intent["id"], intent["status"], intent["amount_received"]) == (
        created["id"],
        "succeeded",
        999,
    )
    with pytest.raises(PaymentsError, match="No such payment_intent"):
        service.retrieve_payment_intent("pi_missing")
