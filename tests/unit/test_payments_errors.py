"""The payments error family: Stripe's exceptions classified, and each kind's HTTP answer."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask

from api.http.errors import register_error_handlers
from services.payments.errors import Kind, PaymentsError, from_stripe, stripe_kind

SECRET = "sk_test_errors0000"


def invalid(message: str, status: int, code: str | None = None) -> stripe.InvalidRequestError:
    """The SDK's constructor is untyped; this is the one call to it."""
    return stripe.InvalidRequestError(  # type: ignore[no-untyped-call]
        message, None, code=code, http_status=status
    )


def unreachable() -> stripe.APIConnectionError:
    return stripe.APIConnectionError("no route")  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (unreachable(), Kind.TRANSIENT),
        (stripe.RateLimitError("slow down", http_status=429), Kind.TRANSIENT),
        (stripe.APIError("oops", http_status=500), Kind.TRANSIENT),
        (invalid("busy", 409), Kind.TRANSIENT),
        (invalid("No such", 404, "resource_missing"), Kind.NOT_FOUND),
        (invalid("too much", 400, "amount_too_large"), Kind.REFUSED),
        (stripe.IdempotencyError("other params", http_status=400), Kind.REFUSED),
        (invalid("bad filter", 400), Kind.FAILED),
        (stripe.AuthenticationError("bad key", http_status=401), Kind.FAILED),
    ],
)
def test_stripe_exceptions_are_classified(exc: stripe.StripeError, kind: Kind) -> None:
    assert stripe_kind(exc) is kind


def test_the_message_names_the_operation_and_hides_the_key() -> None:
    exc = stripe.AuthenticationError(f"Invalid API Key provided: {SECRET}", http_status=401)
    error = from_stripe("refund create", exc, SECRET)
    assert SECRET not in error.message
    assert error.message.startswith("Stripe refund create failed: AuthenticationError (HTTP 401)")
    assert (error.kind, error.stripe_status) == (Kind.FAILED, 401)


@pytest.mark.parametrize(
    ("kind", "status", "code", "retry_after"),
    [
        (Kind.TRANSIENT, 503, "payments_unavailable", "5"),
        (Kind.FAILED, 502, "payments_error", None),
        (Kind.NOT_FOUND, 404, "payment_not_found", None),
        (Kind.REFUSED, 409, "payment_refused", None),
    ],
)
def test_each_kind_answers_its_own_status(
    kind: Kind, status: int, code: str, retry_after: str | None
) -> None:
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/api/pay")
    def pay() -> str:
        raise PaymentsError(f"provider detail for {SECRET}", kind)

    response = app.test_client().get("/api/pay")
    body = response.get_json()
    assert (response.status_code, body["code"], body["success"]) == (status, code, False)
    assert response.headers.get("Retry-After") == retry_after
    assert SECRET not in body["error"]  # the provider's words stay in the log
