"""What the dashboard shows, read in one place: figures, queues, alerts, a user's account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.errors import DomainError
from services.ledger.model import Account, Entry
from services.operations.model import LAST_RECONCILIATION, AuditRecord, EventFailure
from services.operations.stats import SalesReport, sales_report
from services.payments.model import Purchase, PurchaseState, SecurityAlert, User
from services.payments.port import PaymentsGateway
from services.store.port import Store
from services.tokens import TokenLedger
from services.users import find_user_or_email

LIST_LIMIT = 50
HISTORY_LIMIT = 20
MAX_QUERY = 320


@dataclass(frozen=True)
class Overview:
    sales: SalesReport
    failed_events: list[EventFailure]
    pending_deliveries: int | None  # the sandbox's undelivered webhooks; None with Stripe
    review: list[Purchase]
    alerts: list[SecurityAlert]
    reconciliation: dict[str, Any] | None
    audit: list[AuditRecord]


@dataclass(frozen=True)
class UserView:
    user: User
    account: Account
    history: list[Entry]
    purchases: list[Purchase]
    audit: list[AuditRecord]


def pending_deliveries(payments: PaymentsGateway) -> int | None:
    """Only the sandbox keeps an outbox we can count; Stripe's retries are on its side."""
    return payments.pending_deliveries()


def overview(store: Store, payments: PaymentsGateway, now: datetime) -> Overview:
    return Overview(
        sales=sales_report(store, now),
        failed_events=store.list_event_failures(LIST_LIMIT),
        pending_deliveries=pending_deliveries(payments),
        review=store.purchases_in_state(PurchaseState.NEEDS_REVIEW, LIST_LIMIT),
        alerts=alerts_for_review(store),
        reconciliation=store.get_setting(LAST_RECONCILIATION),
        audit=store.list_audit(HISTORY_LIMIT),
    )


def alerts_for_review(store: Store) -> list[SecurityAlert]:
    """Open critical alerts first, however many newer ones there are; then the newest others."""
    critical = store.list_open_alerts("critical", LIST_LIMIT)
    shown = {alert.id for alert in critical}
    others = [alert for alert in store.list_alerts(LIST_LIMIT) if alert.id not in shown]
    return critical + others[: LIST_LIMIT - len(critical)]


def find_user(store: Store, query: str) -> User | None:
    """By username (with or without '@'), by user id, or by email."""
    if not query.strip() or len(query.strip()) > MAX_QUERY:
        raise DomainError(f"search by a user id, a username or an email (1-{MAX_QUERY} characters)")
    return find_user_or_email(store, query)


def user_view(store: Store, ledger: TokenLedger, user: User) -> UserView:
    return UserView(
        user=user,
        account=ledger.balance(user.id),
        history=ledger.history(user.id, limit=HISTORY_LIMIT).entries,
        purchases=store.purchases_of_user(user.id, LIST_LIMIT),
        audit=store.list_audit(HISTORY_LIMIT, target=f"user:{user.id}"),
    )
