"""Operator refunds: never refund more than the user's unspent tokens cover, unless forced.

The refund goes through the payment provider; the provider's refund and
`charge.refunded` events then claw the tokens back through the webhook, like any
other refund. Only active refunds count (``Purchase.refunded_amount``): after a
refund fails or is canceled, the operator can refund again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.errors import DomainError, PurchaseNotFound
from services.payments import refund_records
from services.payments.model import Purchase, PurchaseState
from services.payments.port import PaymentsError, PaymentsGateway
from services.store.port import Store


class RefundRefused(DomainError):
    code = "refund_refused"
    http_status = 409


@dataclass(frozen=True)
class RefundPlan:
    purchase: Purchase
    unspent_tokens: int  # of this purchase, still on the user's balance
    max_amount: int  # minor units that those tokens cover
    amount: int  # what will be refunded now


def covered_amount(purchase: Purchase, unspent: int) -> int:
    """The largest further refund (minor units) whose clawback ``unspent`` tokens cover.

    A refund reaching a cumulative C claws back ``tokens * C // amount`` tokens
    in total, so C may grow while that stays within what is already taken
    plus ``unspent``.
    """
    taken = purchase.refunded_tokens + purchase.disputed_tokens
    if taken + unspent >= purchase.tokens:
        return purchase.amount - purchase.refunded_amount
    ceiling = -(-(taken + unspent + 1) * purchase.amount // purchase.tokens) - 1
    return max(0, min(purchase.amount, ceiling) - purchase.refunded_amount)


class RefundService:
    def __init__(self, store: Store, payments: PaymentsGateway) -> None:
        self.store = store
        self.payments = payments

    def plan(self, purchase_id: str, amount: int | None, force: bool) -> RefundPlan:
        purchase = self.store.get_purchase(purchase_id)
        if purchase is None:
            raise PurchaseNotFound(f"no purchase {purchase_id}")
        if not purchase.payment_intent_id or not (
            purchase.state is PurchaseState.PAID or _held_in_review(purchase)
        ):
            raise RefundRefused(f"purchase {purchase_id} is {purchase.state}, not a paid payment")
        if purchase.amount <= 0:  # a Payment Link session that matched no pack
            raise RefundRefused(
                f"purchase {purchase_id} has no known amount; refund it from the provider's side"
            )
        left = purchase.amount - purchase.refunded_amount
        if left <= 0:
            raise RefundRefused(f"purchase {purchase_id} is already refunded in full")
        if _held_in_review(purchase):  # no tokens went out, so any refund is covered
            return RefundPlan(purchase, 0, left, left if amount is None else _within(amount, left))
        balance = self.store.get_account(purchase.user_id).balance
        unspent = min(
            balance, purchase.tokens - purchase.refunded_tokens - purchase.disputed_tokens
        )
        most = covered_amount(purchase, unspent)
        wanted = most if amount is None else _within(amount, left)
        if wanted <= 0:
            raise RefundRefused(f"a refund must be 1 to {left} (minor units); got {wanted}")
        if wanted > most and not force:
            raise RefundRefused(
                f"the user's unspent tokens from this purchase ({unspent}) cover a refund of at "
                f"most {most}; use --force to refund {wanted} and record the rest as debt"
            )
        return RefundPlan(purchase, unspent, most, wanted)

    def refund(self, plan: RefundPlan, key: str | None = None) -> dict[str, Any]:
        """``key``: the caller's idempotency key (an operator's form), so a repeat refunds once."""
        purchase = plan.purchase
        # A refund that failed or was canceled no longer counts, so the same figures recur:
        # the count of those makes the next refund a new one at the provider.
        default = f"{purchase.refunded_amount}-{plan.amount}"
        if refund_records.ended(purchase.refunds):
            default += f"-after{refund_records.ended(purchase.refunds)}"
        try:
            return self.payments.create_refund(
                payment_intent=str(purchase.payment_intent_id),
                amount=plan.amount,
                idempotency_key=f"refund-{purchase.id}-{key or default}",
                metadata={"purchase_id": purchase.id, "user_id": purchase.user_id},
            )
        except PaymentsError as exc:
            if exc.transient:
                raise  # 503: the provider may answer later
            # Say what the provider said; our record may lag behind a refund made elsewhere.
            raise RefundRefused(f"the payment provider refused the refund: {exc}") from exc


def _held_in_review(purchase: Purchase) -> bool:
    return purchase.state is PurchaseState.NEEDS_REVIEW and purchase.credit_txn_id is None


def _within(amount: int, left: int) -> int:
    if amount <= 0 or amount > left:
        raise RefundRefused(f"a refund must be 1 to {left} (minor units); got {amount}")
    return amount
