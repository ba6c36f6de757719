"""Users, purchases and security alerts, as the stores keep them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class PurchaseState(StrEnum):
    PENDING = "pending"  # checkout started, not paid yet
    AWAITING_PAYMENT = "awaiting_payment"  # completed, bank debit still on its way
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"  # money may have moved; an operator decides


# States a checkout can leave only for PAID (or review): they hold money or may.
OPEN_STATES = frozenset({PurchaseState.PENDING, PurchaseState.AWAITING_PAYMENT})
FINAL_STATES = frozenset({PurchaseState.PAID, PurchaseState.NEEDS_REVIEW})


@dataclass(frozen=True)
class User:
    id: str
    email: str | None = None
    username: str | None = None
    stripe_customer_id: str | None = None
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["username_lower"] = self.username.lower() if self.username else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> User:
        fields = ("id", "email", "username", "stripe_customer_id", "created_at")
        return cls(**{name: data.get(name) for name in fields})  # type: ignore[arg-type]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "username": self.username}


@dataclass(frozen=True)
class Purchase:
    id: str
    buyer_id: str  # who pays; limits apply to them
    user_id: str  # who is credited (the buyer, or a gift's recipient)
    pack_id: str
    tokens: int
    amount: int  # expected, integer minor units
    currency: str
    state: PurchaseState
    created_at: str
    updated_at: str
    source: str = "checkout"  # checkout | payment_link | payment_intent
    session_id: str | None = None
    session_url: str | None = None
    payment_intent_id: str | None = None
    credit_txn_id: str | None = None
    review_reason: str | None = None
    gift_from: str | None = None  # set when the buyer pays for someone else
    refunded_amount: int = 0  # minor units of the active refunds (``refund_records``)
    refunded_tokens: int = 0  # tokens clawed back for refunds so far
    dispute_id: str | None = None
    dispute_status: str | None = None  # Stripe's status of the dispute that changed last
    dispute_amount: int = 0  # minor units of the disputes that take tokens now
    disputed_tokens: int = 0  # tokens clawed back for disputes that take tokens now
    clawback_moves: int = 0  # token movements for refunds and disputes so far; keys them
    repay_move: int = 0  # the move that gave tokens back to an account in debt, to repay
    declines: int = 0  # declined attempts on an embedded payment's intent
    # refund id -> {"amount", "status"} (``refund_records``); the largest cumulative
    # amount a ``charge.refunded`` reported, for refunds not yet known by id.
    refunds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    charge_refunded: int = 0
    # dispute id -> {"amount", "status", "rank", "funds"} (``disputes``).
    disputes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Clawback transactions whose shortfall is followed to whom the buyer sent tokens
    # (``clawback_chain``); each later event of the purchase resumes any unfinished.
    followed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, which sends every value through
        # copy.deepcopy: that was the costliest step of saving a paid purchase. The
        # nested records are copied here, so the result shares nothing mutable.
        data = {name: getattr(self, name) for name in _PURCHASE_FIELDS}
        data["state"] = str(self.state)
        for name in ("refunds", "disputes", "followed"):
            data[name] = _plain_copy(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Purchase:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        values["state"] = PurchaseState(str(values["state"]))
        return cls(**values)

    def with_changes(self, now: str, **changes: Any) -> Purchase:
        return replace(self, updated_at=now, **changes)


_PURCHASE_FIELDS = tuple(Purchase.__dataclass_fields__)


def _plain_copy(value: Any) -> Any:
    """A copy of JSON-like data (mappings, lists, scalars) at every depth."""
    if isinstance(value, Mapping):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(v) for v in value]
    return value


@dataclass(frozen=True)
class SecurityAlert:
    type: str  # amount_mismatch, unknown_package, limit_reached, bad_signature_burst, ...
    severity: str  # info | warning | critical
    details: Mapping[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    purchase_id: str | None = None
    created_at: str = ""
    id: str = ""
    acknowledged_by: str | None = None  # the operator who reviewed it
    acknowledged_at: str | None = None
    # Repeats of one kind, user and window are counted on one alert (created_at: the first).
    count: int = 1
    last_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SecurityAlert:
        values = {k: data.get(k) for k in cls.__dataclass_fields__}
        values["count"] = data.get("count") or 1  # alerts stored before counting existed
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PurchaseLimits:
    per_hour: int = 5
    per_day: int = 20
    # A started checkout counts until it can no longer be paid; Stripe needs >= 30 min.
    open_session_s: int = 35 * 60
