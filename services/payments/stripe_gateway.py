"""Stripe payments: customers, hosted Checkout sessions, refunds, listings, catalog sync.

The caller passes the ``stripe`` module (``StripeService(stripe, key)``); every
request goes through one ``StripeClient`` pinned to ``STRIPE_API_VERSION``,
with network retries, and every create carries an idempotency key derived from
our own ids, so a retried request never makes a second object. Stripe objects
come back as plain JSON-safe dicts, and every SDK error comes back as
``PaymentsError``, classified in ``services.payments.errors``, whose message
never contains the secret key.

``CheckoutSession`` is the payments port's (re-exported here), so this class
satisfies ``services.payments.port.PaymentsGateway``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.catalog import Pack
from services.payments.errors import PaymentsError, from_stripe
from services.payments.port import CheckoutSession, PaymentIntent

if TYPE_CHECKING:
    from stripe import InvalidRequestError, ListObject, StripeClient, StripeError, StripeObject
    from stripe.params import (
        CustomerCreateParams,
        EventListParams,
        PaymentIntentCancelParams,
        PaymentIntentCreateParams,
        ProductCreateParams,
        ProductUpdateParams,
        RefundCreateParams,
    )
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionCreateParamsLineItem,
        SessionCreateParamsLineItemPriceDataProductData,
    )

# The API version the installed SDK (stripe==16.1.0) is generated for: its types
# and the shapes below match it, and the sandbox's events carry it. Upgrade the
# SDK and this constant together.
STRIPE_API_VERSION = "2026-10-28.endive"
MAX_NETWORK_RETRIES = 2
STRIPE_TIMEOUT_S = 12  # per attempt; with the retries a call still ends within a minute
PAGE_SIZE = 100

__all__ = [
    "STRIPE_API_VERSION",
    "CheckoutSession",
    "PaymentsError",
    "StripeService",
    "SyncedPrice",
]


@dataclass(frozen=True)
class SyncedPrice:
    pack_id: str
    product_id: str
    price_id: str
    action: str  # "created" | "updated" | "unchanged"


def _plain(obj: StripeObject) -> dict[str, Any]:
    """The object as Stripe sent it: nested dicts and lists, Decimals back to strings."""
    return obj.to_dict(recursive=True, for_json=True)


def _id_of(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the object."""
    if value is None or isinstance(value, str):
        return value
    return str(value["id"])


class StripeService:
    mode = "stripe"

    def __init__(
        self, stripe_module: types.ModuleType, secret_key: str, api_base: str | None = None
    ) -> None:
        self._secret_key = secret_key
        self._stripe_error: type[StripeError] = stripe_module.StripeError
        self._missing: type[InvalidRequestError] = stripe_module.InvalidRequestError
        self._client: StripeClient = stripe_module.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=MAX_NETWORK_RETRIES,
            # The SDK waits 80 s by default: a slow Stripe would hold every thread.
            http_client=stripe_module.RequestsClient(timeout=STRIPE_TIMEOUT_S),
        )

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        try:
            yield
        except self._stripe_error as exc:
            raise from_stripe(operation, exc, self._secret_key) from exc

    # -- customers and checkout ------------------------------------------------

    def get_or_create_customer(
        self, user_id: str, email: str | None, existing_id: str | None
    ) -> str:
        if existing_id:
            return existing_id
        params: CustomerCreateParams = {"metadata": {"user_id": user_id}}
        if email:
            params["email"] = email
        with self._translated("customer create"):
            customer = self._client.v1.customers.create(
                params, {"idempotency_key": f"customer-{user_id}"}
            )
        return customer.id

    def create_checkout_session(
        self,
        *,
        purchase_id: str,
        pack: Pack,
        customer_id: str | None,
        client_reference_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        expires_at: int,
    ) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [_line_item(pack)],
            "client_reference_id": client_reference_id,
            "metadata": dict(metadata),
            "payment_intent_data": {"metadata": dict(metadata)},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": expires_at,
        }
        if customer_id:
            params["customer"] = customer_id
        with self._translated("checkout session create"):
            session = self._client.v1.checkout.sessions.create(
                params, {"idempotency_key": f"checkout-{purchase_id}"}
            )
        if not session.url:  # a provider failure: no retry makes the URL appear
            raise PaymentsError(f"Stripe checkout session {session.id} came back without a URL")
        return CheckoutSession(
            id=session.id, url=session.url, payment_intent=_id_of(session.payment_intent)
        )

    def create_payment_intent(
        self,
        *,
        purchase_id: str,
        pack: Pack,
        customer_id: str | None,
        metadata: dict[str, str],
    ) -> PaymentIntent:
        """The embedded flow's intent; the purchase id keys it, so asking again returns it.

        Automatic payment methods are on by default since API 2023-08-16, which
        is what the Payment Element needs, so the request does not say so.
        """
        params: PaymentIntentCreateParams = {
            "amount": pack.price_cents,
            "currency": pack.currency,
            "metadata": dict(metadata),
        }
        if customer_id:
            params["customer"] = customer_id
        with self._translated("payment intent create"):
            intent = self._client.v1.payment_intents.create(
                params, {"idempotency_key": f"payment-intent-{purchase_id}"}
            )
        if not intent.client_secret:
            raise PaymentsError(f"Stripe payment intent {intent.id} came back without a secret")
        return PaymentIntent(id=intent.id, client_secret=intent.client_secret)

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        with self._translated("payment intent retrieve"):
            return _plain(self._client.v1.payment_intents.retrieve(payment_intent_id))

    def cancel_payment_intent(self, payment_intent_id: str, reason: str) -> dict[str, Any]:
        """Cancel an intent no longer to be paid; Stripe refuses a succeeded one."""
        params: PaymentIntentCancelParams = {"cancellation_reason": reason}
        with self._translated("payment intent cancel"):
            intent = self._client.v1.payment_intents.cancel(
                payment_intent_id, params, {"idempotency_key": f"cancel-{payment_intent_id}"}
            )
        return _plain(intent)

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        with self._translated("checkout session retrieve"):
            session = self._client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["line_items"]}
            )
        return _plain(session)

    # -- listings and refunds --------------------------------------------------

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events created at or after ``created_gte``, every page; lazy, like any generator."""
        params: EventListParams = {"created": {"gte": created_gte}, "limit": PAGE_SIZE}
        if types:
            params["types"] = list(types)
        return self._paginate("event list", lambda: self._client.v1.events.list(params))

    def list_payments(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Payment intents created at or after ``created_gte``, every page; lazy."""
        return self._paginate(
            "payment intent list",
            lambda: self._client.v1.payment_intents.list(
                {"created": {"gte": created_gte}, "limit": PAGE_SIZE}
            ),
        )

    def list_refunds(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Refunds created at or after ``created_gte``, every page; lazy."""
        return self._paginate(
            "refund list",
            lambda: self._client.v1.refunds.list(
                {"created": {"gte": created_gte}, "limit": PAGE_SIZE}
            ),
        )

    def list_disputes(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Disputes created at or after ``created_gte``, every page; lazy."""
        return self._paginate(
            "dispute list",
            lambda: self._client.v1.disputes.list(
                {"created": {"gte": created_gte}, "limit": PAGE_SIZE}
            ),
        )

    def _paginate(
        self, operation: str, first_page: Callable[[], ListObject[Any]]
    ) -> Iterator[dict[str, Any]]:
        with self._translated(operation):
            for item in first_page().auto_paging_iter():
                yield _plain(item)

    def pending_deliveries(self) -> int | None:
        return None  # Stripe delivers its events and retries them itself

    def deliver_in_foreground(self) -> None:
        """Nothing to do: Stripe sends the events."""

    def deliver_pending(self) -> None:
        """Nothing to do: Stripe sends the events."""

    def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int | None,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        params: RefundCreateParams = {"payment_intent": payment_intent, "metadata": dict(metadata)}
        if amount is not None:
            params["amount"] = amount
        with self._translated("refund create"):
            refund = self._client.v1.refunds.create(params, {"idempotency_key": idempotency_key})
        return _plain(refund)

    # -- catalog ---------------------------------------------------------------

    def sync_catalog(self, catalog: Iterable[Pack]) -> list[SyncedPrice]:
        """Make a Stripe product and an active price for every pack; safe to run again."""
        with self._translated("catalog sync"):
            return [self._sync_pack(pack) for pack in catalog]

    def _sync_pack(self, pack: Pack) -> SyncedPrice:
        product_id = f"pack_{pack.id}"
        product = self._find_product(product_id)
        action = "unchanged"
        if product is None:
            product, action = self._create_product(pack, product_id), "created"
        elif self._update_product(pack, product):
            action = "updated"
        price_id = self._find_price(pack, product_id)
        if price_id is None:
            price_id, action = self._create_price(pack, product_id), "created"
        if product.get("default_price") != price_id:
            self._client.v1.products.update(product_id, {"default_price": price_id})
            action = "created" if action == "created" else "updated"
        return SyncedPrice(pack.id, product_id, price_id, action)

    def _find_product(self, product_id: str) -> dict[str, Any] | None:
        try:
            return _plain(self._client.v1.products.retrieve(product_id))
        except self._missing as exc:
            if exc.code == "resource_missing":
                return None
            raise

    def _create_product(self, pack: Pack, product_id: str) -> dict[str, Any]:
        params: ProductCreateParams = {
            "id": product_id,
            "name": pack.name,
            "metadata": {"pack_id": pack.id},
        }
        if pack.description:
            params["description"] = pack.description
        product = self._client.v1.products.create(params, {"idempotency_key": f"product-{pack.id}"})
        return _plain(product)

    def _update_product(self, pack: Pack, product: dict[str, Any]) -> bool:
        changes: ProductUpdateParams = {}
        if product.get("name") != pack.name:
            changes["name"] = pack.name
        if (product.get("description") or "") != pack.description:
            changes["description"] = pack.description  # "" clears it
        if not product.get("active", True):
            changes["active"] = True
        if changes:
            self._client.v1.products.update(product["id"], changes)
        return bool(changes)

    def _find_price(self, pack: Pack, product_id: str) -> str | None:
        prices = self._client.v1.prices.list(
            {
                "product": product_id,
                "active": True,
                "currency": pack.currency,
                "type": "one_time",
                "limit": PAGE_SIZE,
            }
        )
        for price in prices.auto_paging_iter():
            if price.unit_amount == pack.price_cents and price.currency == pack.currency:
                return price.id
        return None

    def _create_price(self, pack: Pack, product_id: str) -> str:
        price = self._client.v1.prices.create(
            {
                "product": product_id,
                "unit_amount": pack.price_cents,
                "currency": pack.currency,
                "metadata": {"pack_id": pack.id},
            },
            {"idempotency_key": f"price-{pack.id}-{pack.price_cents}-{pack.currency}"},
        )
        return price.id


def _line_item(pack: Pack) -> SessionCreateParamsLineItem:
    if pack.stripe_price_id:
        return {"price": pack.stripe_price_id, "quantity": 1}
    product_data: SessionCreateParamsLineItemPriceDataProductData = {"name": pack.name}
    if pack.description:
        product_data["description"] = pack.description
    return {
        "quantity": 1,
        "price_data": {
            "currency": pack.currency,
            "unit_amount": pack.price_cents,
            "product_data": product_data,
        },
    }
