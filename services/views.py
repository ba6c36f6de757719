"""What pages and the JSON API both read: a user's own purchases, usernames, confirmation.

Blueprints ask here instead of reading the store, so a page and its JSON twin
cannot disagree on who may see a purchase or how a payment is confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.errors import AccountNotFound, PurchaseNotFound
from services.ledger.model import Entry
from services.payments.fulfilment import Fulfilment
from services.payments.model import Purchase, User
from services.payments.port import PaymentsError, PaymentsGateway
from services.store.port import PurchaseStore

log = logging.getLogger("token_store.views")


def own_purchase(user: User, purchase: Purchase | None) -> Purchase:
    """The purchase when ``user`` paid for it or receives it; else not found (never forbidden)."""
    if purchase is None or user.id not in (purchase.buyer_id, purchase.user_id):
        raise PurchaseNotFound("no purchase of yours has that reference")
    return purchase


class Views:
    def __init__(
        self, store: PurchaseStore, payments: PaymentsGateway, fulfilment: Fulfilment
    ) -> None:
        self.store = store
        self.payments = payments
        self.fulfilment = fulfilment

    def own_purchase(self, user: User, purchase_id: str) -> Purchase:
        return own_purchase(user, self.store.get_purchase(purchase_id))

    def purchase(self, purchase_id: str) -> Purchase:
        """Any purchase, for operators."""
        found = self.store.get_purchase(purchase_id)
        if found is None:
            raise PurchaseNotFound(f"no purchase {purchase_id}")
        return found

    def user(self, user_id: str) -> User:
        found = self.store.get_user(user_id)
        if found is None:
            raise AccountNotFound(f"no user {user_id}")
        return found

    def counterparty_names(self, entries: Iterable[Entry]) -> dict[str, str]:
        """The usernames of the other side of ``entries`` (tips, gifts), by user id."""
        user_ids = sorted({e.counterparty_id for e in entries if e.counterparty_id})
        users = (self.store.get_user(user_id) for user_id in user_ids)
        return {u.id: u.username for u in users if u is not None and u.username}

    def confirm_session(self, user: User, session_id: str) -> Purchase:
        """The success page: fulfil through the webhook's own path, so a late webhook
        costs nothing; when the provider does not answer, the webhook still credits it."""
        purchase = own_purchase(user, self.store.find_purchase(session_id=session_id))
        try:
            session = self.payments.retrieve_session(session_id)
        except PaymentsError as exc:
            log.warning("success page: cannot retrieve session for %s: %s", purchase.id, exc)
            return purchase
        return self.fulfilment.fulfil_session(session) or purchase

    def confirm_payment_intent(self, user: User, payment_intent_id: str) -> Purchase:
        found = self.store.find_purchase(payment_intent_id=payment_intent_id)
        purchase = own_purchase(user, found)
        try:
            intent = self.payments.retrieve_payment_intent(payment_intent_id)
        except PaymentsError as exc:
            log.warning("success page: cannot retrieve payment intent for %s: %s", purchase.id, exc)
            return purchase
        return self.fulfilment.fulfil_payment_intent(intent) or purchase
