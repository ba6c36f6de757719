"""Early fraud warnings and Payment Link adoption, over a SQLite store and a stub gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from config.catalog import parse_catalog
from config.errors import ConfigError
from config.settings import load_settings
from services.errors import InvalidPayload
from services.payments.errors import Kind, PaymentsError, not_found, refused
from services.payments.fraud_warnings import FraudWarnings
from services.payments.model import PurchaseState
from services.payments.payment_links import PaymentLinks
from services.payments.port import PaymentsGateway
from services.security import SecurityService
from services.store.sqlite import SqliteStore
from tests.support.records import purchase_record

NOW = datetime(2026, 12, 1, tzinfo=UTC)
INTENT = "pi_efw_unit"
LINK = "plink_ours"


class StubGateway:
    """Answers refunds and session retrievals, or raises ``error``; records what it was asked."""

    def __init__(self, error: PaymentsError | None = None, session: Any = None) -> None:
        self.error = error
        self.session = session
        self.refunds: list[dict[str, Any]] = []

    def create_refund(self, **request: Any) -> dict[str, Any]:
        self.refunds.append(request)
        if self.error:
            raise self.error
        return {"id": "re_1", "amount": 999}

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        if self.error:
            raise self.error
        return {"id": session_id, **(self.session or {})}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "s.db"))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    purchase = purchase_record(
        "pur_efw", "u1", at, PurchaseState.PAID, session_id=None, payment_intent_id=INTENT
    )
    store.start_purchase(purchase, None, NOW)
    yield store
    store.close()


def warnings(store: SqliteStore, gateway: StubGateway | None) -> FraudWarnings:
    payments = cast(PaymentsGateway, gateway)
    return FraudWarnings(store, SecurityService(store), payments, auto_refund=True)


def warning(**fields: Any) -> dict[str, Any]:
    obj = {"id": "issfr_1", "object": "radar.early_fraud_warning", "actionable": True}
    return {**obj, "charge": "ch_1", "payment_intent": INTENT, **fields}


def test_a_warning_refunds_the_rest_of_the_payment_under_the_warnings_key(
    store: SqliteStore,
) -> None:
    gateway = StubGateway()
    assert warnings(store, gateway).created(warning()) == "efw_refunded"
    [request] = gateway.refunds
    assert (request["payment_intent"], request["amount"]) == (INTENT, None)
    assert request["idempotency_key"] == "efw-issfr_1"
    assert request["metadata"]["early_fraud_warning"] == "issfr_1"
    [alert] = store.list_alerts()
    assert (alert.purchase_id, alert.details["refund_id"]) == ("pur_efw", "re_1")


def test_an_expanded_payment_intent_is_read_by_its_id(store: SqliteStore) -> None:
    expanded = warning(payment_intent={"id": INTENT, "object": "payment_intent"})
    assert warnings(store, StubGateway()).created(expanded) == "efw_refunded"


def test_a_refused_refund_is_alerted_and_a_transient_error_propagates(
    store: SqliteStore,
) -> None:
    outcome = warnings(store, StubGateway(refused("charge_disputed"))).created(warning())
    assert outcome == "efw_refund_failed"
    assert "charge_disputed" in store.list_alerts()[0].details["reason"]
    with pytest.raises(PaymentsError) as raised:
        warnings(store, StubGateway(PaymentsError("down", Kind.TRANSIENT))).created(warning())
    assert raised.value.transient


def test_without_a_gateway_a_warning_is_an_alert_only(store: SqliteStore) -> None:
    assert warnings(store, None).created(warning()) == "efw_alert_only"


@pytest.mark.parametrize(
    "fields", [{"actionable": "yes"}, {"payment_intent": 5}, {"id": None}, {"charge": ["x"]}]
)
def test_a_malformed_warning_is_a_bad_payload(store: SqliteStore, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload):
        warnings(store, StubGateway()).created(warning(**fields))


CATALOG = parse_catalog(
    [
        {
            "id": "popular",
            "name": "Popular",
            "tokens": 110,
            "price_cents": 999,
            "stripe_price_id": "price_popular",
        },
        {"id": "pro", "name": "Pro", "tokens": 250, "price_cents": 1999},
    ]
)


def items(*entries: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {"line_items": {"object": "list", "data": list(entries), "has_more": has_more}}


def item(price: Any = "price_popular", quantity: Any = 1) -> dict[str, Any]:
    return {"object": "item", "price": {"id": price} if price else None, "quantity": quantity}


def links(gateway: StubGateway | None) -> PaymentLinks:
    return PaymentLinks(CATALOG, cast(PaymentsGateway, gateway), frozenset({LINK}))


def session(**fields: Any) -> dict[str, Any]:
    return {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "payment",
        "payment_link": LINK,
        **fields,
    }


def test_a_session_of_our_link_is_the_pack_of_its_price() -> None:
    verdict = links(StubGateway(session=items(item()))).verdict(session())
    assert (verdict.ignored, verdict.problem, verdict.payment_link) == (None, None, LINK)
    assert verdict.pack is not None and verdict.pack.id == "popular"
    expanded = session(payment_link={"id": LINK, "object": "payment_link"})
    assert links(StubGateway(session=items(item()))).verdict(expanded).pack is not None


@pytest.mark.parametrize(
    "obj",
    [
        session(mode="subscription"),
        session(mode=None),
        session(payment_link="plink_other"),
        session(payment_link=None),
    ],
    ids=["subscription", "no-mode", "other-link", "no-link"],
)
def test_sessions_that_are_not_ours_are_ignored_without_asking_the_provider(
    obj: dict[str, Any],
) -> None:
    gateway = StubGateway(PaymentsError("must not be asked", Kind.TRANSIENT))
    assert links(gateway).verdict(obj).ignored is not None
    assert links(None).verdict(session()).ignored is not None


@pytest.mark.parametrize(
    "retrieved",
    [
        items(),
        items(item(), item()),
        items(item(), has_more=True),
        items(item(price="price_unknown")),
        items(item(price="price_popular", quantity=2)),
        items(item(price=None)),
        {},
    ],
    ids=["none", "two", "more", "unknown-price", "quantity-2", "no-price", "no-items"],
)
def test_a_session_of_our_link_with_no_single_pack_is_a_problem(retrieved: dict[str, Any]) -> None:
    verdict = links(StubGateway(session=retrieved)).verdict(session())
    assert (verdict.ignored, verdict.pack) == (None, None)
    assert verdict.problem


def test_provider_errors_on_retrieval() -> None:
    missing = links(StubGateway(not_found("No such checkout.session"))).verdict(session())
    assert missing.problem and "would not show" in missing.problem
    with pytest.raises(PaymentsError):
        links(StubGateway(PaymentsError("down", Kind.TRANSIENT))).verdict(session())
    with pytest.raises(InvalidPayload):
        links(StubGateway()).verdict(session(payment_link=7))


def test_the_settings_read_payment_links_and_the_refund_switch() -> None:
    settings = load_settings({"PAYMENT_LINKS": " plink_a1, plink_b2 ,,"})
    assert settings.payment_links == frozenset({"plink_a1", "plink_b2"})
    assert settings.early_fraud_warning_refunds is True
    assert (
        load_settings({"EARLY_FRAUD_WARNING_REFUNDS": "off"}).early_fraud_warning_refunds is False
    )
    assert load_settings({}).payment_links == frozenset()
    with pytest.raises(ConfigError, match="PAYMENT_LINKS"):
        load_settings({"PAYMENT_LINKS": "https://buy.stripe.com/x"})
    with pytest.raises(ConfigError, match="EARLY_FRAUD_WARNING_REFUNDS"):
        load_settings({"EARLY_FRAUD_WARNING_REFUNDS": "maybe"})


def test_a_price_recorded_by_sync_stripe_counts_while_it_matches_its_pack() -> None:
    def verdict(recorded: dict[str, Any]) -> Any:
        gateway = StubGateway(session=items(item(price="price_synced")))
        payments = cast(PaymentsGateway, gateway)
        return PaymentLinks(CATALOG, payments, frozenset({LINK}), lambda: recorded).verdict(
            session()
        )

    synced = {"price_id": "price_synced", "amount": 1999, "currency": "usd"}
    adopted = verdict({"pro": synced})
    assert adopted.pack is not None and adopted.pack.id == "pro"
    assert verdict({"pro": {**synced, "amount": 1500}}).problem  # the price changed since
    assert verdict({"pro": "price_synced"}).problem
