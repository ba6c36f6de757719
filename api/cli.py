"""Operator commands: ``flask --app app tokens ...``."""

from __future__ import annotations

import uuid

import click
from flask import Flask
from flask.cli import AppGroup

from api.deps import services
from services.errors import DomainError
from services.ledger.model import TxnType
from services.payments.checkout import PRICE_IDS_SETTING
from services.payments.port import PaymentsError
from services.payments.refunds import RefundService
from services.payments.sandbox import SandboxPayments

tokens_cli = AppGroup("tokens", help="Token store operations.")


@tokens_cli.command("sync-stripe")
def sync_stripe() -> None:
    """Create or update a Stripe product and price for each pack; record the price ids."""
    from services.stripe_service import StripeService

    gateway = services().payments
    if not isinstance(gateway, StripeService):
        raise click.ClickException(
            "payments are in sandbox mode: set STRIPE_SECRET_KEY to sync with Stripe"
        )
    packs = {pack.id: pack for pack in services().settings.catalog}
    recorded = {}
    for item in gateway.sync_catalog(packs.values()):
        pack = packs[item.pack_id]
        recorded[item.pack_id] = {
            "price_id": item.price_id,
            "product_id": item.product_id,
            "amount": pack.price_cents,
            "currency": pack.currency,
        }
        click.echo(
            f"{item.pack_id:<12} {item.action:<9} product {item.product_id}"
            f"  price {item.price_id}  {pack.display_price} {pack.currency}"
        )
    services().store.put_setting(PRICE_IDS_SETTING, recorded)
    click.echo(f"recorded {len(recorded)} price ids; checkout uses them from now on")


@tokens_cli.command("grant")
@click.argument("user")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why; shown in the user's history.")
@click.option("--key", help="Idempotency key; the same key never grants twice.")
def grant(user: str, amount: int, reason: str, key: str | None) -> None:
    """Grant AMOUNT tokens to USER (a user id or username), as one journal transaction."""
    try:
        target = services().transfers.recipient(user)
        grant_key = key or f"grant:{target.id}:{uuid.uuid4().hex}"
        txn = services().ledger.credit(
            target.id, amount, key=grant_key, type=TxnType.GRANT, reason=reason
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    services().ledger.settle_debt(target.id, txn.id)
    entry = txn.user_entry(target.id)
    click.echo(
        f"granted {amount} tokens to {target.id}: balance {entry.balance_after}, "
        f"transaction {txn.id}, key {grant_key}"
    )


@tokens_cli.command("refund")
@click.argument("purchase_id")
@click.option(
    "--amount", type=click.IntRange(min=1), help="Minor units; default: the most covered."
)
@click.option("--force", is_flag=True, help="Refund more than the unspent tokens cover (debt).")
def refund(purchase_id: str, amount: int | None, force: bool) -> None:
    """Refund a purchase through the payment provider; its webhook then claws tokens back."""
    gateway = services().payments
    if isinstance(gateway, SandboxPayments):
        gateway.deliver_in_foreground()
    refunds = RefundService(services().store, gateway)
    try:
        plan = refunds.plan(purchase_id, amount, force)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(
        f"purchase {purchase_id}: {plan.unspent_tokens} unspent tokens cover a refund of "
        f"at most {plan.max_amount}; refunding {plan.amount}"
    )
    try:
        result = refunds.refund(plan)
    except PaymentsError as exc:
        raise click.ClickException(f"the payment provider refused: {exc}") from exc
    if isinstance(gateway, SandboxPayments):
        gateway.deliver_pending()
    click.echo(
        f"refund {result.get('id')} {result.get('status')}: {plan.amount} "
        f"{plan.purchase.currency}; the webhook takes the tokens back"
    )


@tokens_cli.command("release-expired-holds")
def release_expired_holds() -> None:
    """Release every hold past its expiry (run it periodically, e.g. from Cloud Scheduler)."""
    released = services().ledger.release_expired_holds()
    click.echo(f"released {released} expired holds")


def register_cli(app: Flask) -> None:
    # These modules add their commands to tokens_cli; imported here, not at the
    # top, because they import tokens_cli from this module.
    import api.cli_reconcile
    import api.cli_replay  # noqa: F401

    app.cli.add_command(tokens_cli)
