"""The two exception families: domain rules broken, and storage trouble.

Each class carries a stable ``code`` (sent to clients) and one HTTP status,
so the mapping to HTTP lives in one table instead of in every blueprint.
"""

from __future__ import annotations


class TokenStoreError(Exception):
    """Base of every error the services raise on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DomainError(TokenStoreError):
    """A request that breaks a business rule; retrying it unchanged will not help."""

    code = "invalid_request"
    http_status = 400


class InvalidAmount(DomainError):
    code = "invalid_amount"


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"


class InvalidAccount(DomainError):
    code = "invalid_account"


class SelfTransfer(DomainError):
    code = "self_transfer"


class InvalidCursor(DomainError):
    code = "invalid_cursor"


class UnknownPackage(DomainError):
    code = "unknown_package"


class AccountNotFound(DomainError):
    code = "account_not_found"
    http_status = 404


class TransactionNotFound(DomainError):
    code = "transaction_not_found"
    http_status = 404


class InsufficientBalance(DomainError):
    code = "insufficient_tokens"
    http_status = 402


class AccountInDebt(DomainError):
    code = "account_in_debt"
    http_status = 403


class DebtRepaymentTooLarge(DomainError):
    code = "repayment_exceeds_debt"
    http_status = 400


class IdempotencyConflict(DomainError):
    """The key was already used for a different request."""

    code = "idempotency_conflict"
    http_status = 409


class StorageError(TokenStoreError):
    """The store failed; the operation did not happen and may be retried."""

    code = "storage_error"
    http_status = 503


class StorageContention(StorageError):
    """Too many writers on the same data; retry after a short wait."""

    code = "storage_contention"


class StorageUnavailable(StorageError):
    """The store cannot be reached or refused the request."""

    code = "storage_unavailable"


class PurchaseLimitReached(DomainError):
    code = "purchase_limit_reached"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UsernameTaken(DomainError):
    code = "username_taken"
    http_status = 409


class NotSignedIn(DomainError):
    code = "not_signed_in"
    http_status = 401


class PurchaseNotFound(DomainError):
    code = "purchase_not_found"
    http_status = 404


class InvalidPayload(DomainError):
    code = "invalid_payload"


class BadSignature(DomainError):
    code = "bad_signature"


class HoldNotFound(DomainError):
    code = "hold_not_found"
    http_status = 404


class NotAnOperator(DomainError):
    code = "forbidden"
    http_status = 403


class AlertNotFound(DomainError):
    code = "alert_not_found"
    http_status = 404


class UsageSessionNotFound(DomainError):
    code = "usage_session_not_found"
    http_status = 404


class UsageSessionExpired(DomainError):
    """The session's time ran out: it keeps what was captured and takes no more."""

    code = "usage_session_expired"
    http_status = 409


class ReserveExceeded(DomainError):
    """An increment larger than what is left of the session's reserve."""

    code = "reserve_exceeded"
    http_status = 409
