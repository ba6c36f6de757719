"""Starting a purchase: pack check, limits, customer, checkout session, purchase record."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from config.catalog import Catalog, Pack
from services.errors import (
    IdempotencyConflict,
    PurchaseLimitReached,
    SelfTransfer,
    UnknownPackage,
)
from services.ledger.model import format_time, parse_time, utc_now
from services.payments.model import Purchase, PurchaseState, User
from services.payments.port import (
    CheckoutSession,
    PaymentIntent,
    PaymentsError,
    PaymentsGateway,
)
from services.security import SecurityService, bounded_repr
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.checkout")
PRICE_IDS_SETTING = "stripe_prices"
SUCCESS_PATH = "/token-purchase-success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_PATH = "/token-purchase-cancel"


def purchase_id_for(buyer_id: str, request_key: str | None, source: str = "checkout") -> str:
    """A client's Idempotency-Key maps to one purchase, so a double click makes one session.

    The embedded flow salts the key with its name, so one key used for both
    flows makes two purchases rather than one purchase of the wrong kind.
    """
    if not request_key:
        return "pur_" + uuid.uuid4().hex[:24]
    scope = buyer_id if source == "checkout" else f"{buyer_id}\0{source}"
    return "pur_" + hashlib.sha256(f"{scope}\0{request_key}".encode()).hexdigest()[:24]


class CheckoutService:
    def __init__(
        self,
        store: PurchaseStore,
        payments: PaymentsGateway,
        catalog: Catalog,
        security: SecurityService,
        base_url: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.payments = payments
        self.catalog = catalog
        self.security = security
        self.base_url = base_url
        self.clock = clock

    def pack(self, pack_id: object) -> Pack:
        pack = self.catalog.get(pack_id) if isinstance(pack_id, str) else None
        if pack is None or not pack.available:
            raise UnknownPackage(f"unknown or unavailable package: {bounded_repr(pack_id)}")
        return pack

    def start(
        self,
        buyer: User,
        pack_id: object,
        request_key: str | None = None,
        recipient: User | None = None,
    ) -> tuple[Purchase, CheckoutSession]:
        """Start a checkout; with ``recipient``, a gift the buyer pays and they receive."""
        if recipient is not None and recipient.id == buyer.id:
            raise SelfTransfer("a gift goes to another user; buy for yourself without one")
        pack, purchase, _ = self._open(buyer, recipient or buyer, pack_id, request_key)
        if purchase.session_id and purchase.session_url:
            return purchase, CheckoutSession(
                purchase.session_id, purchase.session_url, purchase.payment_intent_id
            )
        with self._failing_purchase(purchase):
            session = self._create_session(buyer, pack, purchase)
        stored = self.store.update_purchase(
            purchase.id,
            lambda p: p.with_changes(
                format_time(self.clock()),
                session_id=session.id,
                session_url=session.url,
                payment_intent_id=p.payment_intent_id or session.payment_intent,
            ),
        )
        return stored, session

    def start_payment_intent(
        self, buyer: User, pack_id: object, request_key: str | None = None
    ) -> tuple[Purchase, PaymentIntent]:
        """The embedded flow: the same checks and purchase record, with a payment intent.

        A purchase keeps the first intent recorded for it; a repeated or racing
        request gets that one back, so every client confirms the same intent.
        """
        pack, purchase, _ = self._open(buyer, buyer, pack_id, request_key, "payment_intent")
        with self._failing_purchase(purchase):
            if purchase.payment_intent_id:
                return purchase, self._existing_intent(purchase.payment_intent_id)
            intent = self.payments.create_payment_intent(
                purchase_id=purchase.id,
                pack=pack,
                customer_id=self._customer(buyer),
                metadata=self._metadata(purchase),
            )
        stored = self.store.update_purchase(
            purchase.id,
            lambda p: (
                None
                if p.payment_intent_id
                else p.with_changes(format_time(self.clock()), payment_intent_id=intent.id)
            ),
        )
        if stored.payment_intent_id != intent.id:
            return stored, self._existing_intent(str(stored.payment_intent_id))
        return stored, intent

    def _existing_intent(self, payment_intent_id: str) -> PaymentIntent:
        intent = self.payments.retrieve_payment_intent(payment_intent_id)
        return PaymentIntent(str(intent["id"]), str(intent["client_secret"]))

    def _open(
        self,
        buyer: User,
        receiver: User,
        pack_id: object,
        request_key: str | None,
        source: str = "checkout",
    ) -> tuple[Pack, Purchase, datetime]:
        try:
            pack = self.pack(pack_id)
        except UnknownPackage as exc:
            self.security.alert("unknown_package", "info", user_id=buyer.id, reason=exc.message)
            raise
        now = self.clock()
        purchase_id = purchase_id_for(buyer.id, request_key, source)
        purchase = self._reserve(buyer, receiver, pack, purchase_id, now, source)
        if (purchase.pack_id, purchase.user_id) != (pack.id, receiver.id):
            raise IdempotencyConflict(
                "this Idempotency-Key was used for another pack or recipient; use a new key"
            )
        return pack, purchase, now

    @contextmanager
    def _failing_purchase(self, purchase: Purchase) -> Iterator[None]:
        """A refusal before anything was created fails the purchase, then re-raises.

        A transient error (no answer, Stripe 5xx) leaves it pending: Stripe may have
        made the session, and the client's retry with its key gets that one back.
        """
        try:
            yield
        except PaymentsError as exc:
            if exc.transient:
                log.warning("checkout for purchase %s: provider not answering", purchase.id)
                raise
            self.store.update_purchase(
                purchase.id,
                lambda p: (
                    p.with_changes(format_time(self.clock()), state=PurchaseState.FAILED)
                    if p.state is PurchaseState.PENDING
                    and not (p.session_id or p.payment_intent_id)
                    else None
                ),
            )
            log.error("checkout failed for purchase %s: payment provider error", purchase.id)
            raise

    def _reserve(
        self,
        buyer: User,
        receiver: User,
        pack: Pack,
        purchase_id: str,
        now: datetime,
        source: str,
    ) -> Purchase:
        stamp = format_time(now)
        purchase = Purchase(
            id=purchase_id,
            buyer_id=buyer.id,
            user_id=receiver.id,
            gift_from=buyer.id if receiver.id != buyer.id else None,
            pack_id=pack.id,
            tokens=pack.tokens,
            amount=pack.price_cents,
            currency=pack.currency,
            state=PurchaseState.PENDING,
            created_at=stamp,
            updated_at=stamp,
            source=source,
        )
        try:
            return self.store.start_purchase(purchase, self.security.limits, now)
        except PurchaseLimitReached as exc:
            self.security.alert(
                "limit_reached",
                "info",
                user_id=buyer.id,
                reason=exc.message,
                retry_after_s=exc.retry_after_s,
            )
            raise

    def _with_price_id(self, pack: Pack) -> Pack:
        """Use the Stripe price recorded by ``flask tokens sync-stripe`` when it still matches."""
        if pack.stripe_price_id:
            return pack
        synced = (self.store.get_setting(PRICE_IDS_SETTING) or {}).get(pack.id) or {}
        if (synced.get("amount"), synced.get("currency")) != (pack.price_cents, pack.currency):
            return pack  # not synced since the price changed: send price data instead
        return replace(pack, stripe_price_id=str(synced["price_id"]))

    def _customer(self, buyer: User) -> str:
        customer = self.payments.get_or_create_customer(
            buyer.id, buyer.email, buyer.stripe_customer_id
        )
        if customer != buyer.stripe_customer_id:
            customer = self.store.set_customer_id(buyer.id, customer)
        return customer

    @staticmethod
    def _metadata(purchase: Purchase) -> dict[str, str]:
        return {
            "purchase_id": purchase.id,
            "user_id": purchase.user_id,
            "pack_id": purchase.pack_id,
        }

    def _create_session(self, buyer: User, pack: Pack, purchase: Purchase) -> CheckoutSession:
        # From the purchase's reservation, not the clock: a retry under the same
        # idempotency key must send Stripe identical parameters, or Stripe refuses it.
        reserved = parse_time(purchase.created_at)
        expires = reserved + timedelta(seconds=self.security.limits.open_session_s)
        return self.payments.create_checkout_session(
            purchase_id=purchase.id,
            pack=self._with_price_id(pack),
            customer_id=self._customer(buyer),
            client_reference_id=purchase.user_id,
            success_url=self.base_url + SUCCESS_PATH,
            cancel_url=self.base_url + CANCEL_PATH,
            metadata=self._metadata(purchase),
            expires_at=int(expires.timestamp()),
        )
