"""Signed, mutated Stripe events against the webhook of the app under gunicorn.

Every event carries a valid signature (the development secret the app
verifies with), so it gets past the signature check and into the handlers.
The events start from Stripe's own objects in fixtures3.json and are then
bent: fields dropped, nulls and wrong types where Stripe sends objects,
numbers past 2**63, negative and wrong amounts, other currencies, unicode,
unknown event types, reused event ids, and the ids of real purchases (started
before the fuzzing: hosted checkouts, embedded payment intents, and paid ones
to refund and dispute).

Properties: each delivery is answered 200 or 400, never 5xx; afterwards the
ledger reconciles, no balance is negative, every credited purchase was
credited once with its pack, and a purchase whose first accepted payment
event was for the wrong amount or currency is in review with an alert.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st

from api.json_api.openapi import SPEC_PATH
from config.catalog import load_catalog
from config.settings import DEV_WEBHOOK_SECRET
from services.payments.model import PurchaseState
from services.store import open_store
from services.store.port import Store
from tests.fuzz import support
from tests.support.purchases import Buyer, charge_event, dispute_event, send
from tests.support.server import AppServer
from tests.support.stores import StoreUrls
from tests.support.stripe_fixtures import fixture
from tests.support.webhooks import WEBHOOK_PATH, delivery

DEFAULT_EXAMPLES = 1500  # about 20 seconds
PAID_STATUSES = ("paid", "no_payment_required")
SESSION_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")
CHARGE_EVENTS = ("charge.refunded",)
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.closed")
OTHER_EVENTS = ("customer.created", "invoice.paid", "charge.succeeded", "checkout.session")
CATALOG = load_catalog(None)
PRICES = sorted({pack.price_cents for pack in CATALOG})
HUGE = (2**63 - 1, 2**63, 2**64 + 1, 10**30, -(2**63) - 1)
# Every answer is checked against the webhook's responses in openapi.yaml too.
WEBHOOK = schemathesis.openapi.from_path(SPEC_PATH)["/api/stripe/webhook"]["POST"]


@dataclass(frozen=True)
class Known:
    """A purchase the app started before the fuzzing, and what paying for it looks like."""

    purchase_id: str
    user_id: str
    amount: int
    session_id: str | None = None  # hosted checkout
    payment_intent_id: str | None = None  # embedded payment


@dataclass
class World:
    server: AppServer
    store: Store
    buyers: list[Buyer]
    sessions: dict[str, Known]
    intents: dict[str, Known]
    charge_targets: list[str]  # payment intents that refunds and disputes name
    # purchase id -> "correct" or "wrong": the first paid event the app accepted for it
    first_paid: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)

    def user_ids(self) -> list[str]:
        return [buyer.user_id for buyer in self.buyers]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    server = AppServer({}).start()
    store = open_store(server.env["STORE_URL"])
    try:
        yield build_world(server, store)
    finally:
        store.close()
        server.stop()


def build_world(server: AppServer, store: Store) -> World:
    """Real purchases for the events to hit: unpaid checkouts and intents, and paid ones."""
    buyers = [Buyer(server.url, f"hooks{n}@example.com", f"hooks{n}") for n in range(3)]
    sessions: dict[str, Known] = {}
    intents: dict[str, Known] = {}
    paid: list[str] = []
    for n, buyer in enumerate(buyers):
        for pack in ("starter", "popular", "pro"):
            started = buyer.checkout(pack)
            known = Known(started["purchase_id"], buyer.user_id, price(pack), started["session_id"])
            sessions[known.session_id or ""] = known
        response = buyer.post("/api/tokens/create-payment-intent", json={"package": "creator"})
        assert response.status_code == 200, response.text
        body = response.json()
        intents[body["payment_intent_id"]] = Known(
            body["purchase_id"], buyer.user_id, body["amount"], None, body["payment_intent_id"]
        )
        bought = support.pay_in_sandbox(server, buyer, "popular", f"webhook-fuzz-paid-{n}")
        purchase = store.get_purchase(bought["purchase_id"])
        assert purchase is not None and purchase.payment_intent_id is not None
        paid.append(purchase.payment_intent_id)
    targets = paid + [session_intent(session_id) for session_id in sessions]
    return World(server, store, buyers, sessions, intents, targets)


def price(pack: str) -> int:
    found = CATALOG.get(pack)
    assert found is not None
    return found.price_cents


def session_intent(session_id: str) -> str:
    """The payment intent a session's events name: its own, never an embedded purchase's."""
    return "pi_fuzz_" + session_id[-16:]


# -- strategies ---------------------------------------------------------------------------

stripe_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
currencies = st.one_of(
    st.sampled_from(["usd", "usd", "USD", "eur", "", "usd ", "üsd"]), st.text(max_size=4)
)


def amounts(expected: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(expected),
        st.just(expected),
        st.sampled_from([0, -expected, expected + 1, expected - 1, *PRICES]),
        st.sampled_from(HUGE),
        st.integers(min_value=-(10**6), max_value=10**6),
    )


@st.composite
def session_object(draw: st.DrawFn, world: World) -> dict[str, Any]:
    known = draw(st.sampled_from([*sorted(world.sessions.values(), key=str), None]))
    session_id = known.session_id if known else "cs_test_fuzz_" + draw(stripe_ids)
    assert session_id is not None
    expected = known.amount if known else draw(st.sampled_from([*PRICES, 123]))
    user = known.user_id if known else draw(st.sampled_from([*world.user_ids(), "", "no-one"]))
    purchase_id = known.purchase_id if known else "pur_unknown"
    return fixture(
        "checkout.session",
        id=session_id,
        payment_status=draw(st.sampled_from(["paid", "paid", "unpaid", "no_payment_required"])),
        status="complete",
        amount_total=draw(amounts(expected)),
        amount_subtotal=expected,
        currency=draw(currencies),
        client_reference_id=draw(st.sampled_from([user, user, None, *world.user_ids()])),
        metadata={"purchase_id": draw(st.sampled_from([purchase_id, purchase_id, "pur_other"]))},
        payment_intent=draw(st.sampled_from([session_intent(session_id), None])),
    )


@st.composite
def intent_object(draw: st.DrawFn, world: World) -> dict[str, Any]:
    known = draw(st.sampled_from([*sorted(world.intents.values(), key=str), None]))
    intent_id = known.payment_intent_id if known else "pi_fuzz_" + draw(stripe_ids)
    expected = known.amount if known else draw(st.sampled_from(PRICES))
    return fixture(
        "payment_intent",
        id=intent_id,
        status=draw(st.sampled_from(["succeeded", "succeeded", "processing", "canceled"])),
        amount=draw(amounts(expected)),
        amount_received=draw(st.one_of(amounts(expected), st.none())),
        capture_method=draw(st.sampled_from(["automatic", "automatic_async", "manual"])),
        currency=draw(currencies),
    )


@st.composite
def charge_object(draw: st.DrawFn, world: World) -> dict[str, Any]:
    intent = draw(st.sampled_from(world.charge_targets))
    amount = draw(st.sampled_from(PRICES))
    refunded = draw(amounts(amount))
    return fixture(
        "charge",
        id="ch_" + intent[3:],
        payment_intent=intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=refunded,
        refunded=refunded == amount,
        currency="usd",
    )


@st.composite
def dispute_object(draw: st.DrawFn, world: World) -> dict[str, Any]:
    intent = draw(st.sampled_from(world.charge_targets))
    return fixture(
        "dispute",
        id="dp_" + intent[3:],
        charge="ch_" + intent[3:],
        payment_intent=intent,
        amount=draw(amounts(draw(st.sampled_from(PRICES)))),
        currency="usd",
        status=draw(st.sampled_from(["needs_response", "won", "lost", "warning_closed"])),
    )


@st.composite
def mutated(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    """Often none, else up to three fields dropped, nulled or given a value of another type."""
    changes = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))
    for _ in range(changes):
        if not obj:
            break
        key = draw(st.sampled_from(sorted(obj)))
        change = draw(st.sampled_from(["drop", "null", "odd"]))
        if change == "drop":
            del obj[key]
        else:
            obj[key] = None if change == "null" else draw(odd_values)
    return obj


@st.composite
def signed_event(draw: st.DrawFn, world: World) -> bytes:
    kind = draw(st.sampled_from(["session"] * 3 + ["intent"] * 2 + ["charge", "dispute", "other"]))
    types: tuple[str, ...]
    if kind == "session":
        obj, types = draw(session_object(world)), SESSION_EVENTS
    elif kind == "intent":
        obj, types = draw(intent_object(world)), INTENT_EVENTS
    elif kind == "charge":
        obj, types = draw(charge_object(world)), CHARGE_EVENTS
    elif kind == "dispute":
        obj, types = draw(dispute_object(world)), DISPUTE_EVENTS
    else:
        obj, types = fixture(draw(st.sampled_from(["customer", "invoice", "charge"]))), OTHER_EVENTS
    event_type = draw(
        st.one_of(
            st.sampled_from(types),
            st.sampled_from(types),
            st.sampled_from(SESSION_EVENTS + INTENT_EVENTS + CHARGE_EVENTS + DISPUTE_EVENTS),
            st.text(max_size=30),
        )
    )
    # A small pool of event ids, so that ids repeat as Stripe's retries do; now and
    # then an id that is not a Stripe id at all.
    id_kind = draw(st.sampled_from(["pool", "pool", "new", "new", "new", "odd"]))
    if id_kind == "pool":
        event_id: str = draw(st.sampled_from([f"evt_fuzz_{n}" for n in range(12)]))
    else:
        event_id = draw(stripe_ids.map(lambda s: "evt_" + s) if id_kind == "new" else st.text())
    envelope: Any = fixture(
        "event", id=event_id, type=event_type, data={"object": draw(mutated(obj))}
    )
    shape = draw(st.sampled_from(["as sent"] * 9 + ["mutated", "odd data", "odd object"]))
    if shape == "mutated":
        envelope = draw(mutated(envelope))
    elif shape == "odd data":
        envelope["data"] = draw(odd_values)
    elif shape == "odd object":
        envelope["data"] = {"object": draw(odd_values)}
    return json.dumps(envelope, ensure_ascii=draw(st.booleans())).encode()


# -- what the app should have done -----------------------------------------------------------


def verdict(expected: Known, obj: dict[str, Any], event_type: str) -> str | None:
    """ "correct" or "wrong" for an event that pays ``expected``'s purchase; None otherwise.

    Mirrors the checks DESIGN.md names: the paid amount and currency against
    the purchase record, and the session's metadata and reference as a cross-check.
    """
    if event_type in SESSION_EVENTS[:2] and obj.get("payment_status") in PAID_STATUSES:
        if not pays(expected, obj.get("amount_total"), obj.get("currency")):
            return "wrong"
        claimed = (obj.get("metadata") or {}).get("purchase_id")
        reference = obj.get("client_reference_id")
        agree = claimed in (None, expected.purchase_id) and reference in (None, expected.user_id)
        return "correct" if agree else "wrong"
    if event_type == INTENT_EVENTS[0] and obj.get("status") == "succeeded":
        paid = obj.get("amount_received")
        if paid is None and obj.get("capture_method") != "manual":
            paid = obj.get("amount")
        return "correct" if pays(expected, paid, obj.get("currency")) else "wrong"
    return None


def pays(expected: Known, amount: object, currency: object) -> bool:
    # The app lower-cases the currency, as Stripe's are lower case.
    matches = isinstance(currency, str) and currency.lower() == "usd"
    return type(amount) is int and amount == expected.amount and matches


def note_first_paid(world: World, payload: bytes, answer: dict[str, Any]) -> None:
    """Remember, per real purchase, whether the first accepted paid event was right."""
    if answer.get("duplicate"):
        return
    event = json.loads(payload)
    obj, event_type = event["data"]["object"], event["type"]
    obj_id = obj.get("id")
    if not isinstance(obj_id, str):
        return
    known = world.sessions.get(obj_id) if event_type in SESSION_EVENTS else None
    if event_type in INTENT_EVENTS:
        known = world.intents.get(obj_id)
    if known is None or known.purchase_id in world.first_paid:
        return
    judged = verdict(known, obj, event_type)
    if judged is not None:
        world.first_paid[known.purchase_id] = judged


def deliver(world: World, payload: bytes, secret: str = DEV_WEBHOOK_SECRET) -> requests.Response:
    body, headers = delivery(payload, secret)
    response = requests.post(
        f"{world.server.url}{WEBHOOK_PATH}", data=body, headers=headers, timeout=30
    )
    WEBHOOK.validate_response(response)
    return response


# -- the tests ---------------------------------------------------------------------------------


def test_signed_mutated_events_never_fail_and_never_break_the_ledger(world: World) -> None:
    @given(payload=signed_event(world))
    @support.hypothesis_settings(support.examples(DEFAULT_EXAMPLES, "FUZZ_WEBHOOK_EXAMPLES"))
    def delivered(payload: bytes) -> None:
        response = deliver(world, payload)
        world.statuses[response.status_code] += 1
        assert response.status_code in (200, 400), (response.status_code, response.text)
        answer = response.json()
        if response.status_code == 400:
            # Signed with the right secret: only the payload can be what is wrong.
            assert answer["code"] == "invalid_payload", answer
            return
        assert answer["received"] is True, answer
        note_first_paid(world, payload, answer)

    support.seeded(delivered)()
    assert world.statuses[200] > 0 and world.statuses[400] > 0, world.statuses

    support.assert_reconciles(world.server)
    support.assert_accounts_add_up(world.buyers)
    support.assert_purchases_credited_once_for_their_pack(world.store, CATALOG)
    reviewed = {alert.purchase_id for alert in world.store.list_alerts(limit=10_000)}
    for known in [*world.sessions.values(), *world.intents.values()]:
        purchase = world.store.get_purchase(known.purchase_id)
        assert purchase is not None
        first = world.first_paid.get(known.purchase_id)
        expected_state = {"correct": PurchaseState.PAID, "wrong": PurchaseState.NEEDS_REVIEW}
        if first is None:
            assert purchase.state not in (PurchaseState.PAID, PurchaseState.NEEDS_REVIEW), purchase
        else:
            assert purchase.state is expected_state[first], (first, purchase)
        if purchase.state is PurchaseState.NEEDS_REVIEW:
            assert purchase.id in reviewed, f"{purchase.id} is in review without an alert"
    verdicts = Counter(world.first_paid.values())
    assert verdicts["wrong"] > 0 and verdicts["correct"] > 0, verdicts


def test_a_body_over_one_mebibyte_is_refused_with_413(world: World) -> None:
    envelope = fixture("event", id="evt_fuzz_huge", type="checkout.session.completed")
    envelope["data"] = {"object": {"padding": "x" * (1024 * 1024)}}
    response = deliver(world, json.dumps(envelope).encode())
    assert response.status_code == 413
    assert response.json()["code"] == "request_entity_too_large"


def test_unsigned_and_wrongly_signed_events_are_refused(world: World) -> None:
    payload = json.dumps(fixture("event", id="evt_fuzz_unsigned")).encode()
    unsigned = requests.post(f"{world.server.url}/api/stripe/webhook", data=payload, timeout=30)
    WEBHOOK.validate_response(unsigned)
    forged = deliver(world, payload, secret="whsec_other")
    for response in (unsigned, forged):
        assert (response.status_code, response.json()["code"]) == (400, "bad_signature")


@pytest.fixture
def paid_purchase(store_urls: StoreUrls) -> Iterator[tuple[AppServer, Store, str]]:
    """A popular pack paid in the sandbox: (server, its store, the payment intent)."""
    server = AppServer({"STORE_URL": store_urls.new(busy_timeout_ms=None)}).start()
    store = open_store(server.env["STORE_URL"])
    try:
        buyer = Buyer(server.url, "int64@example.com")
        bought = support.pay_in_sandbox(server, buyer, "popular", "int64")
        purchase = store.get_purchase(bought["purchase_id"])
        assert purchase is not None and purchase.payment_intent_id is not None
        yield server, store, purchase.payment_intent_id
    finally:
        store.close()
        server.stop()


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_an_amount_past_int64_is_a_bad_payload_on_every_store(
    paid_purchase: tuple[AppServer, Store, str], kind: str
) -> None:
    """2**63 as the refunded or disputed amount of a real payment: one of the huge numbers above.

    No Stripe amount is that large. SQLite stored it; Firestore cannot (its
    integers are 64-bit), so there the event failed with a 500 on every retry.
    Both should refuse it as a bad payload and leave the purchase as it was.
    """
    server, store, intent = paid_purchase
    huge = 2**63
    if kind == "refund":
        event = charge_event(intent, 999, huge)
    else:
        event = dispute_event("charge.dispute.created", intent, huge, "needs_response")
    response = send(server.url, event)
    assert (response.status_code, response.json().get("code")) == (400, "invalid_payload")
    purchase = store.find_purchase(payment_intent_id=intent)
    assert purchase is not None
    assert (purchase.refunded_amount, purchase.dispute_amount) == (0, 0)
    # The same payment's real refund still goes through.
    assert send(server.url, charge_event(intent, 999, 999)).status_code == 200
    support.assert_reconciles(server)
