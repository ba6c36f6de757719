"""Builds every service once per app from the settings: the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from services.auth import AuthService, FirebaseVerifier
from services.operations.actions import AdminActions
from services.payments.checkout import PRICE_IDS_SETTING, CheckoutService
from services.payments.events import EventProcessor
from services.payments.fraud_warnings import FraudWarnings
from services.payments.fulfilment import Fulfilment
from services.payments.payment_links import PaymentLinks
from services.payments.port import PaymentsGateway
from services.reservations import Reservations
from services.security import SecurityService
from services.sessions import SessionService
from services.store import open_store
from services.store.port import Store
from services.tokens import TokenLedger
from services.transfers import TransferService
from services.usage import UsageMeter
from services.views import Views


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    ledger: TokenLedger
    security: SecurityService
    payments: PaymentsGateway
    checkout: CheckoutService
    fulfilment: Fulfilment
    events: EventProcessor
    auth: AuthService
    sessions: SessionService
    transfers: TransferService
    reservations: Reservations
    views: Views
    admin_actions: AdminActions  # the dashboard, the operator API and the CLI share it


def _payments(settings: Settings) -> PaymentsGateway:
    if settings.payments_mode == "stripe":
        import stripe

        from services.payments.stripe_gateway import StripeService

        return StripeService(stripe, str(settings.stripe_secret_key), settings.stripe_api_base)
    from services.payments.sandbox import SandboxPayments

    return SandboxPayments(settings)


def build_services(settings: Settings) -> Services:
    store = open_store(settings.store_url)
    ledger = TokenLedger(store)
    security = SecurityService(store)
    payments = _payments(settings)
    fulfilment = Fulfilment(
        store,
        ledger,
        settings.catalog,
        security,
        payment_links=PaymentLinks(
            settings.catalog,
            payments,
            settings.payment_links,
            lambda: store.get_setting(PRICE_IDS_SETTING) or {},
        ),
        fraud_warnings=FraudWarnings(
            store, security, payments, settings.early_fraud_warning_refunds
        ),
        payments=payments,
        clawback_window_s=settings.clawback_window_s,
    )
    verifier = (
        FirebaseVerifier(settings.firebase_project_id) if settings.firebase_project_id else None
    )
    return Services(
        settings=settings,
        store=store,
        ledger=ledger,
        security=security,
        payments=payments,
        checkout=CheckoutService(
            store, payments, settings.catalog, security, settings.app_base_url
        ),
        fulfilment=fulfilment,
        events=EventProcessor(store, fulfilment, livemode=settings.stripe_livemode),
        auth=AuthService(store, verifier, ledger, settings.signup_bonus),
        sessions=SessionService(store, settings.sessions, verifier),
        transfers=TransferService(ledger, store),
        reservations=Reservations(ledger, UsageMeter(ledger)),
        views=Views(store, payments, fulfilment),
        admin_actions=AdminActions(store, ledger, fulfilment, payments),
    )
