"""Embedded payments' intents under the purchase limits: declines are counted, and an
intent is canceled after a few of them or once it is as old as a checkout session can
be, so that an intent nobody may pay any more stops holding a slot, and an intent
that could still be paid never stops counting (``limits.counts_toward_limit``).

Stripe never cancels an intent on its own, so the app does, through the gateway
(the sandbox plays the same API); ``payment_intent.canceled`` then closes the
purchase, as the cancel's own answer already did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from services.ledger.model import format_time
from services.payments import payload
from services.payments.model import Purchase, PurchaseLimits, PurchaseState
from services.payments.port import PaymentsError, PaymentsGateway
from services.store.port import Store

log = logging.getLogger("token_store.intents")
MAX_DECLINES = 3  # then the intent is canceled: card testing gets no more tries on it
CANCEL_REASON = "abandoned"
LOOKBACK = timedelta(days=30)  # how far back stale intents are looked for
SOURCE = "payment_intent"


class IntentAttempts:
    def __init__(
        self,
        store: Store,
        payments: PaymentsGateway | None,
        limits: PurchaseLimits,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.payments = payments  # None: nothing is canceled (declines are still counted)
        self.limits = limits
        self.clock = clock

    def declined(self, purchase: Purchase) -> str:
        """``payment_intent.payment_failed``: count it; at MAX_DECLINES cancel the intent."""
        now = format_time(self.clock())
        counted = self.store.update_purchase(
            purchase.id,
            lambda p: (
                p.with_changes(now, declines=p.declines + 1)
                if p.state is PurchaseState.PENDING
                else None
            ),
        )
        if counted.state is not PurchaseState.PENDING or counted.declines < MAX_DECLINES:
            return "payment_declined"
        return self._cancel(counted, f"declined {counted.declines} times") or "payment_declined"

    def canceled(self, intent: Mapping[str, Any]) -> str:
        """``payment_intent.canceled``: close the purchase (failed after declines, else expired)."""
        intent_id = payload.text(intent, "id")
        purchase = self.store.find_purchase(payment_intent_id=intent_id)
        if purchase is None or purchase.source != SOURCE:
            return "no_purchase"
        closed = self.store.update_purchase(purchase.id, self._close)
        return str(closed.state)

    def _close(self, p: Purchase) -> Purchase | None:
        if p.state is not PurchaseState.PENDING:
            return None  # paid, in review or closed already: a cancel changes none of them
        state = PurchaseState.FAILED if p.declines >= MAX_DECLINES else PurchaseState.EXPIRED
        return p.with_changes(format_time(self.clock()), state=state)

    def cancel_stale(self) -> int:
        """Cancel pending intents as old as a checkout session can be; how many were."""
        now = self.clock()
        # Created at or before this moment: a session of that age has expired (end excluded).
        newest = now - timedelta(seconds=self.limits.open_session_s) + timedelta(microseconds=1)
        stale = self.store.purchases_created(now - LOOKBACK, newest, PurchaseState.PENDING)
        canceled = 0
        for purchase in stale:
            if purchase.source == SOURCE and purchase.payment_intent_id:
                canceled += self._cancel(purchase, "not paid in time") is not None
        return canceled

    def _cancel(self, purchase: Purchase, why: str) -> str | None:
        """Cancel the purchase's intent and close the purchase; None when not canceled."""
        if self.payments is None:
            return None
        intent_id = str(purchase.payment_intent_id)
        try:
            intent = self.payments.cancel_payment_intent(intent_id, CANCEL_REASON)
        except PaymentsError as exc:
            if exc.transient:
                raise  # 5xx: Stripe sends the event again, and the cancel is retried
            # Paid meanwhile (its credit follows) or canceled already (its event follows).
            log.info("intent of purchase %s not canceled: %s", purchase.id, exc.message)
            return None
        log.warning(
            "purchase %s: payment intent canceled (%s)",
            purchase.id,
            why,
            extra={"purchase_id": purchase.id, "user_id": purchase.user_id},
        )
        return self.canceled(intent)
