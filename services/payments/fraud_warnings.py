"""Early fraud warnings: the card issuer says a payment may be fraudulent.

An actionable warning (no dispute yet, not fully refunded) refunds what is
left of the payment, once: the refund's idempotency key is the warning's id,
so redeliveries and replays ask the provider for the same refund. Refunding
before the dispute saves its fee and the chargeback on the record. The tokens
come back as for any refund, through the ``charge.refunded`` event that
follows; what the buyer already spent or sent on is followed and the rest
becomes debt, as with a forced operator refund.

Every warning writes a critical alert naming the purchase and the warning.
With automatic refunds off (``EARLY_FRAUD_WARNING_REFUNDS=off``), or for a
warning that is not actionable, the alert is all. A warning about a payment
no purchase knows is alerted and acknowledged. Only a transient provider error
propagates, so that the webhook answers 5xx and Stripe retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from services.errors import InvalidPayload
from services.payments import payload
from services.payments.model import Purchase
from services.payments.port import PaymentsError, PaymentsGateway
from services.security import SecurityService
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.fraud_warnings")
ALERT = "early_fraud_warning"
UNKNOWN_PAYMENT = "efw_unknown_payment"
NOT_ACTIONABLE = "efw_not_actionable"
ALERT_ONLY = "efw_alert_only"
ALREADY_REFUNDED = "efw_already_refunded"
REFUNDED = "efw_refunded"
REFUND_FAILED = "efw_refund_failed"


def refund_key(warning_id: str) -> str:
    return f"efw-{warning_id}"


def _id_of(obj: Mapping[str, Any], name: str) -> str | None:
    """An expandable field's id: Stripe sends the id, or the object when expanded."""
    value = obj.get(name)
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is not None and not isinstance(value, str):
        raise InvalidPayload(f"radar.early_fraud_warning.{name} has the wrong type")
    return value or None


class FraudWarnings:
    def __init__(
        self,
        store: PurchaseStore,
        security: SecurityService,
        payments: PaymentsGateway | None,
        auto_refund: bool,
    ) -> None:
        self.store = store
        self.security = security
        self.refunds = payments if auto_refund else None  # None: alerts only

    def created(self, warning: Mapping[str, Any]) -> str:
        """``radar.early_fraud_warning.created``: refund once, or alert only; the outcome."""
        warning_id = payload.text(warning, "id")
        actionable = payload.field(warning, "actionable", bool) is True
        intent = _id_of(warning, "payment_intent")
        facts = {
            "warning_id": warning_id,
            "charge_id": _id_of(warning, "charge"),
            "payment_intent": intent,
            "fraud_type": payload.field(warning, "fraud_type"),
        }
        # Stripe names the payment intent on warnings; purchases know their payments by it.
        purchase = self.store.find_purchase(payment_intent_id=intent) if intent else None
        if purchase is None:
            return self._alert(UNKNOWN_PAYMENT, None, "for a payment no purchase knows", facts)
        if not actionable:
            return self._alert(NOT_ACTIONABLE, purchase, "not actionable: no refund", facts)
        if self.refunds is None:
            return self._alert(ALERT_ONLY, purchase, "automatic refunds are off", facts)
        if purchase.amount > 0 and purchase.refunded_amount >= purchase.amount:
            return self._alert(ALREADY_REFUNDED, purchase, "refunded in full already", facts)
        return self._refund(self.refunds, purchase, warning_id, facts)

    def _refund(
        self, gateway: PaymentsGateway, purchase: Purchase, warning_id: str, facts: dict[str, Any]
    ) -> str:
        try:
            refund = gateway.create_refund(
                payment_intent=str(purchase.payment_intent_id),
                amount=None,  # what is left: a fraudulent payment is returned whole
                idempotency_key=refund_key(warning_id),
                metadata={
                    "purchase_id": purchase.id,
                    "user_id": purchase.user_id,
                    "early_fraud_warning": warning_id,
                },
            )
        except PaymentsError as exc:
            if exc.transient:
                raise  # 5xx: Stripe delivers the warning again later
            reason = f"the refund was not made ({exc.kind.name.lower()}): {exc.message}"
            return self._alert(REFUND_FAILED, purchase, reason, facts)
        amount = refund.get("amount")
        facts = {**facts, "refund_id": refund.get("id"), "refund_amount": amount}
        return self._alert(REFUNDED, purchase, f"refunded {amount}; tokens follow", facts)

    def _alert(
        self, outcome: str, purchase: Purchase | None, why: str, facts: dict[str, Any]
    ) -> str:
        named = f"purchase {purchase.id}" if purchase else f"charge {facts['charge_id']}"
        self.security.alert(
            ALERT,
            "critical",
            user_id=purchase.user_id if purchase else None,
            purchase_id=purchase.id if purchase else None,
            reason=f"early fraud warning {facts['warning_id']} on {named}: {why}",
            outcome=outcome,
            **facts,
        )
        return outcome
