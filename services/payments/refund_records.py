"""A purchase's refunds, by refund id, and the amount they take back.

Stripe reports refunds in two shapes: a refund object (``refund.created``,
``refund.updated``, ``refund.failed``, ``charge.refund.updated``) with its id,
amount and status, and a charge (``charge.refunded``) whose ``amount_refunded``
is the cumulative amount, with no refund ids unless the charge carries its
``refunds`` list. Deliveries come in any order and repeat, so a record only
moves forward in its status order; a failed or canceled refund never comes back.

What the refunds take back, in minor units::

    active + max(0, charge_refunded - known)

``active`` sums the pending, requires_action and succeeded refunds; ``known``
sums every refund known by id, whatever its status. The charge's figure beyond
what known refunds explain is a refund not yet seen by id: it counts until its
own event says what it is. Never more than what is active, once every refund is
known by id, and never more than the payment.

| status            | tokens                                   |
|-------------------|------------------------------------------|
| `requires_action` | taken (the refund is on its way)         |
| `pending`         | taken                                    |
| `succeeded`       | taken                                    |
| `failed`          | given back, for good; an alert           |
| `canceled`        | given back, for good                     |
| anything else     | the record keeps its last known status   |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.payments import payload

# Where a status stands in a refund's life: a record never moves back.
REFUND_RANK: Mapping[str, int] = {
    "requires_action": 0,
    "pending": 1,
    "succeeded": 2,
    "failed": 3,
    "canceled": 3,
}
ACTIVE = frozenset({"requires_action", "pending", "succeeded"})
ENDED = frozenset({"failed", "canceled"})

Records = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class RefundFact:
    """One refund as an event reported it."""

    id: str
    amount: int
    status: str

    @classmethod
    def of(cls, refund: Mapping[str, Any]) -> RefundFact:
        # Stripe's refund status is nullable; an unknown one changes no record.
        status = payload.field(refund, "status") or ""
        return cls(payload.text(refund, "id"), payload.amount(refund, "amount"), status)


def refunds_in_charge(charge: Mapping[str, Any]) -> list[RefundFact]:
    """The refunds a charge carries (an expanded ``refunds`` list); usually none."""
    listed = charge.get("refunds")
    data = listed.get("data") if isinstance(listed, Mapping) else None
    items = data if isinstance(data, list) else []
    return [RefundFact.of(item) for item in items if isinstance(item, Mapping)]


def learn(records: Records, fact: RefundFact) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The records with ``fact`` applied, and the change's name (None: nothing new).

    A status this table does not know, or one behind the record's, changes nothing.
    """
    rank = REFUND_RANK.get(fact.status)
    known = records.get(fact.id)
    if rank is None:
        return _copy(records), None
    if known is not None and REFUND_RANK.get(str(known.get("status")), -1) >= rank:
        return _copy(records), None
    updated = _copy(records)
    amount = int(known["amount"]) if known is not None else fact.amount
    updated[fact.id] = {"amount": amount, "status": fact.status}
    return updated, f"{fact.id}:{fact.status}"


def refunded_amount(records: Records, charge_refunded: int, price: int) -> int:
    """Minor units the refunds take back now (the module's formula), at most ``price``."""
    active = sum(int(r["amount"]) for r in records.values() if r.get("status") in ACTIVE)
    known = sum(int(r["amount"]) for r in records.values())
    return min(price, active + max(0, charge_refunded - known))


def ended(records: Records) -> int:
    """How many refunds failed or were canceled: an operator's next refund is a new one."""
    return sum(1 for r in records.values() if r.get("status") in ENDED)


def _copy(records: Records) -> dict[str, dict[str, Any]]:
    return {key: dict(value) for key, value in records.items()}
