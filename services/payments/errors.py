"""The payments error family: one exception, four kinds, each with its HTTP status.

Both gateways raise only ``PaymentsError``. What kind it is decides what a
caller may do next: retry later (transient), give up on a missing object (not
found), accept that the provider said no (refused), or report a provider
failure that retrying will not fix. Stripe's own exceptions are classified
here and nowhere else.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stripe import StripeError

REDACTED = "[redacted]"
RETRY_AFTER_S = 5
# Stripe error codes that mean "not in this state": the request was understood and refused.
REFUSAL_CODES = frozenset(
    {
        "amount_too_large",
        "amount_too_small",
        "charge_already_refunded",
        "charge_disputed",
        "charge_expired_for_capture",
        "payment_intent_unexpected_state",
        "resource_already_exists",
    }
)


class Kind(Enum):
    """Each kind with the HTTP status and error code an API answers with."""

    TRANSIENT = (503, "payments_unavailable")  # no answer, rate limited, Stripe 5xx
    FAILED = (502, "payments_error")  # the provider failed in a way a retry will not fix
    NOT_FOUND = (404, "payment_not_found")  # no such object at the provider
    REFUSED = (409, "payment_refused")  # the provider understood and said no

    @property
    def http_status(self) -> int:
        return self.value[0]

    @property
    def code(self) -> str:
        return self.value[1]


class PaymentsError(Exception):
    """The payment provider failed, refused, or has no such object; see ``kind``."""

    def __init__(
        self,
        message: str,
        kind: Kind = Kind.FAILED,
        *,
        stripe_status: int | None = None,
        stripe_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.stripe_status = stripe_status
        self.stripe_code = stripe_code

    @property
    def transient(self) -> bool:
        """Worth retrying later: the provider did not answer, or answered 5xx."""
        return self.kind is Kind.TRANSIENT

    @property
    def not_found(self) -> bool:
        return self.kind is Kind.NOT_FOUND

    @property
    def refused(self) -> bool:
        return self.kind is Kind.REFUSED

    @property
    def http_status(self) -> int:
        return self.kind.http_status

    @property
    def code(self) -> str:
        return self.kind.code

    @property
    def retry_after_s(self) -> int | None:
        """Seconds a client should wait before retrying; None when retrying will not help."""
        return RETRY_AFTER_S if self.transient else None


def not_found(message: str) -> PaymentsError:
    return PaymentsError(message, Kind.NOT_FOUND)


def refused(message: str) -> PaymentsError:
    return PaymentsError(message, Kind.REFUSED)


def stripe_kind(exc: StripeError) -> Kind:
    """What a Stripe SDK exception means for the caller."""
    import stripe  # loaded already: an exception of it is in hand

    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return Kind.TRANSIENT
    # 409: a concurrent request holds the idempotency key or the object's lock.
    if status is not None and (status >= 500 or status == 409):
        return Kind.TRANSIENT
    if exc.code == "resource_missing":
        return Kind.NOT_FOUND
    if isinstance(exc, stripe.IdempotencyError) or exc.code in REFUSAL_CODES:
        return Kind.REFUSED
    return Kind.FAILED


def from_stripe(operation: str, exc: StripeError, secret_key: str) -> PaymentsError:
    """``exc`` as a PaymentsError whose message names the operation and never the key."""
    detail = exc.user_message or "no message"
    status = f" (HTTP {exc.http_status})" if exc.http_status else ""
    message = f"Stripe {operation} failed: {type(exc).__name__}{status}: {detail}"
    if secret_key:
        message = message.replace(secret_key, REDACTED)
    return PaymentsError(
        message, stripe_kind(exc), stripe_status=exc.http_status, stripe_code=exc.code
    )
