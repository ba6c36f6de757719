"""The payments port: what checkout needs from Stripe, or from the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from config.catalog import Pack
from services.payments.errors import PaymentsError

__all__ = ["CheckoutSession", "PaymentIntent", "PaymentsError", "PaymentsGateway"]


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    payment_intent: str | None


@dataclass(frozen=True)
class PaymentIntent:
    """What the page needs to confirm an embedded payment."""

    id: str
    client_secret: str


class PaymentsGateway(Protocol):
    """What checkout, refunds and reconciliation need; every failure is a PaymentsError."""

    mode: str  # "stripe" | "sandbox"

    def get_or_create_customer(
        self, user_id: str, email: str | None, existing_id: str | None
    ) -> str: ...

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
    ) -> CheckoutSession: ...

    def create_payment_intent(
        self,
        *,
        purchase_id: str,
        pack: Pack,
        customer_id: str | None,
        metadata: dict[str, str],
    ) -> PaymentIntent:
        """One payment intent per purchase: asking again returns the same one."""

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        """The payment intent as Stripe shapes it."""

    def cancel_payment_intent(self, payment_intent_id: str, reason: str) -> dict[str, Any]:
        """Cancel an unpaid intent (Stripe sends payment_intent.canceled); a paid one is refused."""

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        """The checkout session as Stripe shapes it, line items expanded."""

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events Stripe sent since ``created_gte`` (a Unix time), oldest pages first."""

    def list_payments(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Payment intents created since ``created_gte``."""

    def list_refunds(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Refunds created since ``created_gte``, whatever their status."""

    def list_disputes(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Disputes (and inquiries) created since ``created_gte``, whatever their status."""

    def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int | None,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Refund ``amount`` (None: all) of a payment; the webhook then claws back."""

    # -- webhook events the gateway sends itself (the sandbox); Stripe sends its own --

    def pending_deliveries(self) -> int | None:
        """Events waiting to be delivered; None when the provider delivers them (Stripe)."""

    def deliver_in_foreground(self) -> None:
        """For short-lived processes (CLI commands): deliver from the caller from now on."""

    def deliver_pending(self) -> None:
        """Deliver every waiting event now, from the caller."""
