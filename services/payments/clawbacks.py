"""Refunds and disputes from Stripe: tokens taken back, debt, and restoring won disputes.

Each step decides from the purchase as stored inside the same store
transaction that moves the tokens (``apply_for_purchase``), so repeated,
concurrent and out-of-order events converge on one end state:

- ``charge.refunded`` carries the CUMULATIVE amount refunded; the tokens
  taken back are ``tokens * amount_refunded // amount`` in total, and each
  event takes only what is missing.
- ``charge.dispute.created`` takes back the disputed share not already
  refunded; ``charge.dispute.closed`` gives it back when the dispute is won.

A clawback larger than the balance takes the balance to zero and records the
rest as debt (ledger rule). Every clawback writes a security alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from services.errors import InvalidPayload
from services.ledger.model import JournalTransaction, Operation, OpKind, TxnType, format_time
from services.ledger.rules import validate
from services.payments.model import Purchase
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger

log = logging.getLogger("token_store.clawbacks")


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPayload(f"{obj.get('object', 'object')}.{name} must be a whole amount")
    return value


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{obj.get('object', 'object')}.{name} is missing")
    return value


def share(purchase: Purchase, amount: int) -> int:
    """Tokens in proportion to ``amount`` of the price; the whole price is every token."""
    if purchase.amount <= 0:
        return 0
    return purchase.tokens * min(amount, purchase.amount) // purchase.amount


class Clawbacks:
    def __init__(
        self,
        store: Store,
        ledger: TokenLedger,
        security: SecurityService,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.security = security
        self.clock = clock

    def _find(self, obj: Mapping[str, Any]) -> Purchase | None:
        intent = obj.get("payment_intent")
        if not isinstance(intent, str) or not intent:
            return None
        return self.store.find_purchase(payment_intent_id=intent)

    def refunded(self, charge: Mapping[str, Any]) -> str:
        purchase = self._find(charge)
        if purchase is None:
            return "no_purchase"
        refunded = _int(charge, "amount_refunded")

        def missing(p: Purchase) -> int:
            """Tokens still to take back for the refunds so far (a dispute took its share)."""
            if refunded <= p.refunded_amount:
                return 0
            return max(0, share(p, refunded) - p.disputed_tokens - p.refunded_tokens)

        def build(p: Purchase) -> Operation | None:
            tokens = missing(p)
            if tokens <= 0:
                return None
            return self._op(p, tokens, TxnType.REFUND, f"refund:{p.id}:{p.refunded_tokens}")

        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            if refunded <= p.refunded_amount:
                return None
            return p.with_changes(
                self._now(),
                refunded_amount=refunded,
                refunded_tokens=p.refunded_tokens + missing(p),
            )

        return self._apply(purchase, build, mark, "refund", charge_id=charge.get("id"))

    def dispute_opened(self, dispute: Mapping[str, Any]) -> str:
        purchase = self._find(dispute)
        if purchase is None:
            return "no_purchase"
        dispute_id, amount = _str(dispute, "id"), _int(dispute, "amount")

        def disputed(p: Purchase) -> int:
            """The disputed share of the tokens, less what refunds already took back."""
            if p.dispute_id is not None:
                return 0
            return max(0, min(share(p, amount), p.tokens - p.refunded_tokens))

        def build(p: Purchase) -> Operation | None:
            tokens = disputed(p)
            if tokens <= 0:
                return None
            return self._op(p, tokens, TxnType.DISPUTE, f"dispute:{p.id}:{dispute_id}")

        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            if p.dispute_id is not None:
                return None
            return p.with_changes(
                self._now(),
                dispute_id=dispute_id,
                dispute_status="open",
                disputed_tokens=disputed(p),
            )

        return self._apply(purchase, build, mark, "dispute", dispute_id=dispute_id)

    def dispute_closed(self, dispute: Mapping[str, Any]) -> str:
        purchase = self._find(dispute)
        if purchase is None:
            return "no_purchase"
        won = _str(dispute, "status") == "won"

        def build(p: Purchase) -> Operation | None:
            if not won or p.dispute_status != "open" or p.disputed_tokens <= 0:
                return None
            return Operation(
                OpKind.CREDIT,
                f"dispute-won:{p.id}:{p.dispute_id}",
                p.user_id,
                p.disputed_tokens,
                TxnType.DISPUTE_REVERSAL,
                reason=f"{p.pack_id} pack",
                refs={"purchase_id": p.id, "dispute_id": str(p.dispute_id)},
            )

        def mark(p: Purchase, txn: JournalTransaction | None) -> Purchase | None:
            if p.dispute_status != "open":
                return None
            if won:
                return p.with_changes(self._now(), dispute_status="won", disputed_tokens=0)
            return p.with_changes(self._now(), dispute_status="lost")

        txn, stored = self.store.apply_for_purchase(
            purchase.id, (purchase.user_id,), build, mark, self.clock()
        )
        if txn is not None:
            self.ledger.settle_debt(purchase.user_id, txn.id)
        return f"dispute_{stored.dispute_status}"

    def _op(self, p: Purchase, tokens: int, kind: TxnType, key: str) -> Operation:
        return validate(
            Operation(
                OpKind.CLAWBACK,
                key,
                p.user_id,
                tokens,
                kind,
                reason=f"{p.pack_id} pack",
                refs={"purchase_id": p.id},
            )
        )

    def _apply(
        self,
        purchase: Purchase,
        build: Callable[[Purchase], Operation | None],
        mark: Callable[[Purchase, JournalTransaction | None], Purchase | None],
        what: str,
        **details: Any,
    ) -> str:
        txn, _ = self.store.apply_for_purchase(
            purchase.id, (purchase.user_id,), build, mark, self.clock()
        )
        if txn is None:
            return f"{what}_unchanged"
        entry = txn.user_entry(purchase.user_id)
        self.security.alert(
            f"{what}_clawback",
            "warning",
            user_id=purchase.user_id,
            purchase_id=purchase.id,
            reason=f"{what}: {-entry.amount} tokens taken back, debt now {entry.debt_after}",
            **{k: v for k, v in details.items() if isinstance(v, str)},
        )
        return f"{what}_clawed_back"

    def _now(self) -> str:
        return format_time(self.clock())
