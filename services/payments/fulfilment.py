"""The one fulfil path: signed events and the success page both end here.

Credits key on the purchase (one purchase per checkout session or payment
intent), so any number of events, retries and page loads credit once. The
verified data is checked against the purchase record made at checkout; the
session's metadata is only a cross-check.

One module, over 400 lines, on purpose: every way a purchase gets credited or
parked for review (a webhook's one-transaction paid event, its general path,
the success page, an operator's approval, an adopted Payment Link session)
runs the same checks here, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from config.catalog import Catalog, Pack
from services.errors import DomainError, InvalidPayload
from services.faults import AFTER_CREDIT_COMMIT, fault_point
from services.ledger.model import (
    JournalTransaction,
    Operation,
    OpKind,
    TxnType,
    format_time,
    utc_now,
)
from services.ledger.rules import validate, validate_user_id
from services.payments.clawback_chain import DEFAULT_WINDOW_S
from services.payments.clawbacks import Clawbacks
from services.payments.fraud_warnings import FraudWarnings
from services.payments.intent_attempts import IntentAttempts
from services.payments.model import (
    FINAL_STATES,
    OPEN_STATES,
    Purchase,
    PurchaseState,
    User,
)
from services.payments.payload import field
from services.payments.payment_links import PaymentLinks
from services.payments.port import PaymentsGateway
from services.payments.purchase_rules import NOT_HANDLED, PaidEvent, PaidLocator, PaidResult
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger

# A credit's log words, also on a paid event's own line (EventProcessor).
CREDITED = "purchase %s credited %d tokens"
log = logging.getLogger("token_store.fulfilment")
PAID_STATUSES = ("paid", "no_payment_required")
SESSION_PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
INTENT_PAID_EVENT = "payment_intent.succeeded"
UNIDENTIFIED = "unidentified"


def _received(intent: Mapping[str, Any]) -> int | None:
    """What a succeeded intent collected: ``amount_received``, which Stripe always sends.

    Older shapes (localstripe's among them) lack it; an automatic-capture
    intent that succeeded collected its whole ``amount``. We never capture manually.
    """
    received = field(intent, "amount_received", int)
    if received is None and field(intent, "capture_method") != "manual":
        return field(intent, "amount", int)  # type: ignore[no-any-return]
    return received  # type: ignore[no-any-return]


def credit_key(purchase: Purchase) -> str:
    return credit_key_of(purchase.id)


def credit_key_of(purchase_id: str) -> str:
    return f"purchase:{purchase_id}"


def _hint(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(purchase id, user id) as the event names them: where to look, never what to trust."""
    metadata = obj.get("metadata")
    named = metadata if isinstance(metadata, dict) else {}
    purchase_id = named.get("purchase_id")
    user_id = named.get("user_id") or obj.get("client_reference_id")
    try:
        return validate_user_id(purchase_id), validate_user_id(user_id)
    except DomainError:
        return None


def approvable(purchase: Purchase) -> bool:
    """In review, and no money went back: a refunded or disputed payment is not credited."""
    return (
        purchase.state is PurchaseState.NEEDS_REVIEW
        and purchase.refunded_amount == 0
        and purchase.dispute_id is None
    )


class Fulfilment:
    def __init__(
        self,
        store: Store,
        ledger: TokenLedger,
        catalog: Catalog,
        security: SecurityService,
        clock: Callable[[], datetime] = utc_now,
        payment_links: PaymentLinks | None = None,
        fraud_warnings: FraudWarnings | None = None,
        payments: PaymentsGateway | None = None,
        clawback_window_s: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.store = store
        self.ledger = ledger
        # Without a gateway declines are counted, but no intent is canceled.
        self.intents = IntentAttempts(store, payments, security.limits, clock)
        self.clawbacks = Clawbacks(store, ledger, security, clock, clawback_window_s)
        # Without a gateway: no session is adopted, and fraud warnings are alerts only.
        self.payment_links = payment_links or PaymentLinks(catalog, None, frozenset())
        self.fraud_warnings = fraud_warnings or FraudWarnings(store, security, None, False)
        self.catalog = catalog
        self.security = security
        self.clock = clock

    # -- events -------------------------------------------------------------

    def handle_event(self, event: Mapping[str, Any]) -> str:
        """Act on a verified event (DESIGN.md's event table); returns the outcome recorded."""
        handler = self._handlers().get(str(event["type"]))
        if handler is None:
            log.debug("ignored Stripe event type %s", event["type"])
            return "ignored"
        obj: Mapping[str, Any] = event["data"]["object"]
        return handler(obj)

    def _handlers(self) -> dict[str, Callable[[Mapping[str, Any]], str]]:
        return {
            "checkout.session.completed": lambda o: self._outcome(self.fulfil_session(o)),
            "checkout.session.async_payment_succeeded": lambda o: self._outcome(
                self.fulfil_session(o)
            ),
            "checkout.session.async_payment_failed": lambda o: self._close_session(
                o, PurchaseState.FAILED
            ),
            "checkout.session.expired": lambda o: self._close_session(o, PurchaseState.EXPIRED),
            "payment_intent.succeeded": lambda o: self._outcome(self.fulfil_payment_intent(o)),
            "payment_intent.payment_failed": self._declined_payment_intent,
            "payment_intent.canceled": self.intents.canceled,
            "charge.refunded": self.clawbacks.refunded,
            "refund.created": self.clawbacks.refund_changed,
            "refund.updated": self.clawbacks.refund_changed,
            "refund.failed": self.clawbacks.refund_changed,
            "charge.refund.updated": self.clawbacks.refund_changed,
            "charge.dispute.created": self.clawbacks.dispute_opened,
            "charge.dispute.updated": self.clawbacks.dispute_changed,
            "charge.dispute.closed": self.clawbacks.dispute_closed,
            "charge.dispute.funds_withdrawn": self.clawbacks.funds_withdrawn,
            "charge.dispute.funds_reinstated": self.clawbacks.funds_reinstated,
            "radar.early_fraud_warning.created": self.fraud_warnings.created,
        }

    @staticmethod
    def _outcome(purchase: Purchase | None) -> str:
        return "no_purchase" if purchase is None else str(purchase.state)

    # -- fulfilment -----------------------------------------------------------

    def fulfil_session(self, session: Mapping[str, Any]) -> Purchase | None:
        """Credit a checkout session's purchase once, when it is paid and matches."""
        session_id = field(session, "id")
        if not session_id:
            raise InvalidPayload("checkout.session has no id")
        purchase = self.store.find_purchase(session_id=session_id) or self._adopt(session)
        if purchase is None:
            return None
        if field(session, "payment_status") not in PAID_STATUSES:
            return self._move(purchase, PurchaseState.AWAITING_PAYMENT, {PurchaseState.PENDING})
        problem = self._mismatch(purchase, session)
        intent = field(session, "payment_intent")
        if problem:
            return self._review(purchase, problem, intent, session_id=session_id)
        return self.credit(purchase, intent)

    def fulfil_payment_intent(self, intent: Mapping[str, Any]) -> Purchase | None:
        """The embedded flow: only purchases created for this payment intent."""
        intent_id = field(intent, "id")
        purchase = self.store.find_purchase(payment_intent_id=intent_id) if intent_id else None
        if purchase is None or purchase.source != "payment_intent":
            # Checkout's own payment intents are fulfilled through their session.
            return None
        if field(intent, "status") != "succeeded":
            return purchase
        problem = self._amount_problem(purchase, _received(intent), field(intent, "currency"))
        if problem:
            return self._review(purchase, problem, intent_id, payment_intent_id=intent_id)
        return self.credit(purchase, intent_id)

    def credit(
        self, purchase: Purchase, payment_intent: str | None, approved_by: str | None = None
    ) -> Purchase:
        """Credit a paid purchase once, and mark it paid in the same store transaction.

        With ``approved_by`` (an operator's id) it credits a purchase in review
        instead, and nothing else: the operator decided the payment is good.
        The key is the purchase's either way, so it is credited at most once.
        """
        op = self._credit_op(purchase, approved_by)

        def build(p: Purchase) -> Operation | None:
            # Decided on the purchase as stored, inside the same transaction.
            if approved_by is not None:
                return op if approvable(p) else None
            return None if p.state in FINAL_STATES else op

        try:
            self.store.ensure_user(User(id=purchase.user_id, created_at=self._now()), self.clock())
            txn, paid = self.store.apply_for_purchase(
                purchase.id, op.user_ids, build, self._mark_paid(payment_intent), self.clock()
            )
        except DomainError as exc:
            if approved_by is not None:
                raise  # the operator sees why, and the purchase stays in review
            return self._review(purchase, f"credit refused: {exc.message}")
        self._credited(paid, txn)
        self._follow_up(paid, txn)
        return paid

    def _credit_op(self, purchase: Purchase, approved_by: str | None = None) -> Operation:
        refs = {"purchase_id": purchase.id, "pack_id": purchase.pack_id}
        return validate(
            Operation(
                OpKind.CREDIT,
                credit_key(purchase),
                purchase.user_id,
                purchase.tokens,
                TxnType.PURCHASE,
                reason=f"{purchase.pack_id} pack",
                counterparty_id=purchase.gift_from,
                refs=refs if approved_by is None else {**refs, "approved_by": approved_by},
            )
        )

    def _mark_paid(
        self, payment_intent: str | None
    ) -> Callable[[Purchase, JournalTransaction | None], Purchase | None]:
        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            if txn is None:
                return None
            return p.with_changes(
                self._now(),
                state=PurchaseState.PAID,
                credit_txn_id=txn.id,
                payment_intent_id=p.payment_intent_id or payment_intent,
            )

        return mark

    def _credited(self, paid: Purchase, txn: JournalTransaction | None, line: bool = True) -> None:
        """``line`` False: the event's own log line reports the credit (EventProcessor)."""
        fault_point(AFTER_CREDIT_COMMIT)
        if txn is not None and line:
            log.info(
                CREDITED,
                paid.id,
                paid.tokens,
                extra={"purchase_id": paid.id, "user_id": paid.user_id},
            )

    def _follow_up(
        self,
        paid: Purchase,
        txn: JournalTransaction | None,
        repay: bool = True,
        deferred: bool = True,
    ) -> None:
        """Repay debt from the credit, and apply refunds or disputes that came first.

        ``repay`` and ``deferred`` False: a read in the credit's transaction showed
        no debt, or no kept refund or dispute, so there is nothing to look up.
        """
        # Also when an earlier attempt committed the credit and died before repaying:
        # the retry finds the purchase paid. Keyed on the credit, so it repays once.
        credited = txn.id if txn is not None else paid.credit_txn_id
        if credited is not None and repay:
            self.ledger.settle_debt(paid.user_id, credited)
        if paid.payment_intent_id and deferred:
            self.clawbacks.apply_deferred(paid.payment_intent_id)

    # -- a paid event in one store transaction ---------------------------------------

    def paid_event(self, event: Mapping[str, Any]) -> PaidResult:
        """Credit and record a paid event in one store transaction when it is ordinary.

        NOT_HANDLED (nothing written) sends the event down the general path:
        not a paid event, no purchase, a mismatch, a refused credit.
        """
        request = self._paid_request(event)
        if request is None:
            return NOT_HANDLED
        try:
            result = self.store.paid_event(request, self.clock())
        except DomainError:
            return NOT_HANDLED  # the general path puts it in review and says why
        if result.purchase is None:
            return result
        # Recorded in the same commit: the event's line says what was credited, one
        # line an event instead of two (each a write to the log under the request).
        self._credited(result.purchase, result.txn, line=not result.recorded)
        if not result.recorded:
            self._follow_up(result.purchase, result.txn, result.repay, result.deferred)
        return result

    def _paid_request(self, event: Mapping[str, Any]) -> PaidEvent | None:
        event_type = str(event["type"])
        obj: Mapping[str, Any] = event["data"]["object"]
        if event_type in SESSION_PAID_EVENTS:
            return self._paid_session(event, obj)
        if event_type == INTENT_PAID_EVENT:
            return self._paid_intent(event, obj)
        return None

    def _paid_session(
        self, event: Mapping[str, Any], session: Mapping[str, Any]
    ) -> PaidEvent | None:
        session_id = field(session, "id")
        if not session_id or field(session, "payment_status") not in PAID_STATUSES:
            return None
        intent = field(session, "payment_intent")
        where = _hint(session) or self._located(self.store.find_purchase(session_id=session_id))
        if where is None:
            return None
        return PaidEvent(
            locator=self._locator(event, where, intent),
            event_type=str(event["type"]),
            belongs=lambda p: p.session_id == session_id,
            problem=lambda p: self._mismatch(p, session),
            credit=self._credit_op,
            mark=self._mark_paid(intent),
        )

    def _paid_intent(self, event: Mapping[str, Any], intent: Mapping[str, Any]) -> PaidEvent | None:
        intent_id = field(intent, "id")
        if not intent_id or field(intent, "status") != "succeeded":
            return None
        where = _hint(intent) or self._located(
            self.store.find_purchase(payment_intent_id=intent_id)
        )
        if where is None:
            return None
        received, currency = _received(intent), field(intent, "currency")
        return PaidEvent(
            locator=self._locator(event, where, intent_id),
            event_type=str(event["type"]),
            belongs=lambda p: p.payment_intent_id == intent_id and p.source == "payment_intent",
            problem=lambda p: self._amount_problem(p, received, currency),
            credit=self._credit_op,
            mark=self._mark_paid(intent_id),
        )

    @staticmethod
    def _located(purchase: Purchase | None) -> tuple[str, str] | None:
        return None if purchase is None else (purchase.id, purchase.user_id)

    @staticmethod
    def _locator(
        event: Mapping[str, Any], where: tuple[str, str], intent: str | None
    ) -> PaidLocator:
        purchase_id, user_id = where
        return PaidLocator(
            event_id=str(event["id"]),
            purchase_id=purchase_id,
            user_id=user_id,
            payment_intent=intent,
            credit=Operation(
                OpKind.CREDIT, credit_key_of(purchase_id), user_id, 1, TxnType.PURCHASE
            ),
        )

    # -- checks ----------------------------------------------------------------

    def _mismatch(self, purchase: Purchase, session: Mapping[str, Any]) -> str | None:
        problem = self._amount_problem(
            purchase, field(session, "amount_total", int), field(session, "currency")
        )
        if problem:
            return problem
        metadata = field(session, "metadata", dict) or {}
        claimed = metadata.get("purchase_id")
        if claimed is not None and claimed != purchase.id:
            return f"metadata names purchase {claimed!r}, the session belongs to {purchase.id}"
        reference = field(session, "client_reference_id")
        if reference is not None and reference != purchase.user_id:
            return "client_reference_id does not name the purchase's user"
        return None

    @staticmethod
    def _amount_problem(purchase: Purchase, amount: int | None, currency: str | None) -> str | None:
        if amount != purchase.amount or (currency or "").lower() != purchase.currency:
            return f"paid {amount} {currency}, expected {purchase.amount} {purchase.currency}"
        return None

    # -- state changes -------------------------------------------------------

    def _now(self) -> str:
        return format_time(self.clock())

    def _move(
        self, purchase: Purchase, state: PurchaseState, allowed_from: set[PurchaseState]
    ) -> Purchase:
        return self.store.update_purchase(
            purchase.id,
            lambda p: p.with_changes(self._now(), state=state) if p.state in allowed_from else None,
        )

    def _close_session(self, session: Mapping[str, Any], state: PurchaseState) -> str:
        purchase = self.store.find_purchase(session_id=field(session, "id") or "")
        if purchase is None:
            return "no_purchase"
        updated = self._move(purchase, state, set(OPEN_STATES))
        if state is PurchaseState.FAILED:
            log.warning(
                "purchase %s failed: the payment did not go through",
                purchase.id,
                extra={"purchase_id": purchase.id, "user_id": purchase.user_id},
            )
        return str(updated.state)

    def _declined_payment_intent(self, intent: Mapping[str, Any]) -> str:
        """A declined attempt: Stripe leaves the intent open for another payment method.

        So the purchase stays open too, and keeps counting toward the purchase limits
        while it can be paid: a declined intent is no free slot for another one. After
        a few declines the intent is canceled (``IntentAttempts``).
        """
        purchase = self.store.find_purchase(payment_intent_id=field(intent, "id") or "")
        if purchase is None or purchase.source != "payment_intent":
            return "no_purchase"
        log.info(
            "payment intent of purchase %s declined; it stays open for another card",
            purchase.id,
            extra={"purchase_id": purchase.id, "user_id": purchase.user_id},
        )
        return self.intents.declined(purchase)

    def _review(
        self,
        purchase: Purchase,
        reason: str,
        payment_intent: str | None = None,
        **details: Any,
    ) -> Purchase:
        """Park the purchase for an operator, keeping its payment so that it can be refunded."""
        moved = False

        def to_review(p: Purchase) -> Purchase | None:
            nonlocal moved  # the last run decides: a store may retry the change
            moved = p.state not in FINAL_STATES
            if not moved:
                return None
            return p.with_changes(
                self._now(),
                state=PurchaseState.NEEDS_REVIEW,
                review_reason=reason,
                payment_intent_id=p.payment_intent_id or payment_intent,
            )

        updated = self.store.update_purchase(purchase.id, to_review)
        if moved:  # one alert when the purchase goes to review, not one per later event
            self.security.alert(
                "purchase_needs_review",
                "critical",
                user_id=purchase.user_id or None,
                purchase_id=purchase.id,
                reason=reason,
                **details,
            )
        return updated

    # -- sessions the app did not create (Payment Links) -------------------------

    def _adopt(self, session: Mapping[str, Any]) -> Purchase | None:
        """A session from one of our Payment Links (``PaymentLinks``); None: not adopted."""
        session_id = str(session["id"])
        intent = field(session, "payment_intent")
        verdict = self.payment_links.verdict(session)
        if verdict.ignored is not None:
            self.security.alert(
                "session_not_adopted",
                "warning",
                reason=f"{verdict.ignored}: not credited",
                session_id=session_id,
                payment_link=verdict.payment_link,
                payment_intent=intent,
            )
            return None
        reference = field(session, "client_reference_id") or ""
        purchase = self._adopted(session_id, reference or UNIDENTIFIED, verdict.pack, intent)
        # Already paid for: recorded without limits, never refused.
        stored = self.store.start_purchase(purchase, None, self.clock())
        problem = verdict.problem or self._unknown_user(reference)
        if problem:
            return self._review(
                stored, problem, intent, session_id=session_id, payment_link=verdict.payment_link
            )
        return stored

    def _adopted(
        self, session_id: str, user_id: str, pack: Pack | None, intent: str | None
    ) -> Purchase:
        now = self._now()
        return Purchase(
            id="pur_" + hashlib.sha256(session_id.encode()).hexdigest()[:24],
            buyer_id=user_id,
            user_id=user_id,
            pack_id=pack.id if pack else "unknown",
            tokens=pack.tokens if pack else 0,
            amount=pack.price_cents if pack else 0,
            currency=pack.currency if pack else "",
            state=PurchaseState.PENDING,
            created_at=now,
            updated_at=now,
            source="payment_link",
            session_id=session_id,
            payment_intent_id=intent,
        )

    @staticmethod
    def _unknown_user(user_id: str) -> str | None:
        try:
            validate_user_id(user_id)
        except DomainError:
            return "a Payment Link session with no user in client_reference_id"
        return None
