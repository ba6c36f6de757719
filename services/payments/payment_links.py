"""Which checkout sessions the app did not create it takes as purchases: Payment Links.

Only a session in ``mode=payment`` from a Payment Link named in
``PAYMENT_LINKS`` is adopted; any other (a subscription, another link, a
session made elsewhere on the account) is not this store's sale and is left
alone with an alert. An adopted session's pack comes from its one line item's
Stripe price id (the catalog's ``stripe_price_id``, or the price ``flask tokens
sync-stripe`` recorded while it still matches the pack), read from the session
retrieved from the provider with its line items expanded (Stripe's events
never carry them); the amount paid is
then checked against that pack as for any purchase. A session whose items
name no single pack, or that the provider would not show, is parked in review:
its buyer paid through our link and an operator decides. A transient provider
error propagates, so that the webhook answers 5xx and Stripe retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config.catalog import Catalog, Pack
from services.errors import InvalidPayload
from services.payments import payload
from services.payments.port import PaymentsError, PaymentsGateway


@dataclass(frozen=True)
class Verdict:
    """``ignored``: not adopted (why). Else adopted, for ``pack`` or, with ``problem``, review."""

    ignored: str | None = None
    pack: Pack | None = None
    problem: str | None = None
    payment_link: str | None = None


def link_of(session: Mapping[str, Any]) -> str | None:
    """The session's Payment Link id (expandable: the id, or the link object)."""
    value = session.get("payment_link")
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is not None and not isinstance(value, str):
        raise InvalidPayload("checkout.session.payment_link has the wrong type")
    return value or None


def no_recorded_prices() -> Mapping[str, Any]:
    return {}


def price_ids(pack: Pack, recorded: Mapping[str, Any]) -> set[str]:
    """The pack's Stripe prices: the catalog's, and sync-stripe's while it matches the pack."""
    ids = {pack.stripe_price_id} if pack.stripe_price_id else set()
    synced = recorded.get(pack.id)
    if not isinstance(synced, Mapping) or not synced.get("price_id"):
        return ids
    if (synced.get("amount"), synced.get("currency")) == (pack.price_cents, pack.currency):
        ids.add(str(synced["price_id"]))
    return ids


class PaymentLinks:
    def __init__(
        self,
        catalog: Catalog,
        payments: PaymentsGateway | None,
        allowed: frozenset[str],
        recorded_prices: Callable[[], Mapping[str, Any]] = no_recorded_prices,
    ) -> None:
        self.catalog = catalog
        self.payments = payments
        self.allowed = allowed
        # pack id -> {"price_id", "amount", "currency"}, as sync-stripe records them
        self.recorded_prices = recorded_prices

    def verdict(self, session: Mapping[str, Any]) -> Verdict:
        """Whether to adopt a session no purchase knows, and as which pack."""
        session_id = payload.text(session, "id")
        link = link_of(session)
        mode = payload.field(session, "mode")
        # Named in the reason: repeats within the hour count on one alert, each logs its line.
        if mode != "payment":
            return Verdict(ignored=f"{session_id}: a {mode or 'modeless'} session, not ours")
        if self.payments is None or link is None or link not in self.allowed:
            return Verdict(
                ignored=f"{session_id}: from {link or 'no Payment Link'}, not one in PAYMENT_LINKS",
                payment_link=link,
            )
        try:
            retrieved = self._retrieve(self.payments, session_id)
            pack, problem = self._pack_of(retrieved)
        except PaymentsError as exc:
            if exc.transient:
                raise
            pack, problem = None, f"the provider would not show the session: {exc.message}"
        return Verdict(pack=pack, problem=problem, payment_link=link)

    @staticmethod
    def _retrieve(gateway: PaymentsGateway, session_id: str) -> Mapping[str, Any]:
        retrieved = gateway.retrieve_session(session_id)
        if retrieved.get("id") != session_id:
            raise PaymentsError(f"asked for session {session_id}, got {retrieved.get('id')}")
        return retrieved

    def _pack_of(self, session: Mapping[str, Any]) -> tuple[Pack | None, str | None]:
        """The pack of the session's one line item, by Stripe price id, quantity 1."""
        listed = payload.field(session, "line_items", dict) or {}
        items = listed.get("data")
        if not isinstance(items, list) or len(items) != 1 or listed.get("has_more"):
            count = len(items) if isinstance(items, list) else 0
            return None, f"a Payment Link session with {count} line items, not one pack"
        item = items[0] if isinstance(items[0], dict) else {}
        price = item.get("price")
        price_id = price.get("id") if isinstance(price, dict) else price
        recorded = self.recorded_prices()  # one read for every pack
        packs = [p for p in self.catalog if price_id and price_id in price_ids(p, recorded)]
        if len(packs) != 1:
            return None, f"a Payment Link session for price {price_id!r}, which no pack has"
        if item.get("quantity") != 1:
            return None, f"a Payment Link session for {item.get('quantity')!r} of one pack"
        return packs[0], None
