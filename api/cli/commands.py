"""Operator commands: sync-stripe, grant, refund, release-expired-holds."""

from __future__ import annotations

import getpass
import os
import uuid

import click

from api.cli.group import tokens_cli
from api.http.deps import services
from services.errors import DomainError
from services.operations.actions import ActionRequest
from services.payments.checkout import PRICE_IDS_SETTING
from services.payments.model import User
from services.payments.port import PaymentsError

MAX_OPERATOR_LENGTH = 64


@tokens_cli.command("sync-stripe")
def sync_stripe() -> None:
    """Create or update a Stripe product and price for each pack; record the price ids."""
    from services.payments.stripe_gateway import StripeService

    gateway = services().payments
    if not isinstance(gateway, StripeService):  # sync_catalog is Stripe's alone
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


def _operator(name: str | None) -> User:
    """Who ran the command, named in its audit record: --operator, else the login name."""
    chosen = (name or os.environ.get("TOKENS_OPERATOR") or getpass.getuser()).strip()
    if not chosen or not chosen.isprintable() or len(chosen) > MAX_OPERATOR_LENGTH:
        raise click.ClickException("name the operator with --operator NAME")
    return User(id=f"cli:{chosen}")


def _request(key: str | None, reason: str = "") -> ActionRequest:
    return ActionRequest(key or uuid.uuid4().hex, reason, keyed=key is not None)


OPERATOR = click.option(
    "--operator", help="Who runs this, for the audit record (default: $TOKENS_OPERATOR or login)."
)


@tokens_cli.command("grant")
@click.argument("user")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why; shown in the user's history.")
@click.option("--key", help="Idempotency key; the same key never grants twice.")
@OPERATOR
def grant(user: str, amount: int, reason: str, key: str | None, operator: str | None) -> None:
    """Grant AMOUNT tokens to USER (a user id or username), as the dashboard does."""
    admin = _operator(operator)
    try:
        target = services().transfers.recipient(user)
        result = services().admin_actions.adjust(admin, target, amount, _request(key, reason))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    details = result.audit.details
    click.echo(
        f"granted {amount} tokens to {target.id}: balance {details.get('balance_after')}, "
        f"transaction {details.get('transaction_id')}, audit {result.audit.id}"
        + (" (done before; nothing more)" if result.replayed else "")
    )


@tokens_cli.command("refund")
@click.argument("purchase_id")
@click.option(
    "--amount", type=click.IntRange(min=1), help="Minor units; default: the most covered."
)
@click.option("--force", is_flag=True, help="Refund more than the unspent tokens cover (debt).")
@click.option("--key", help="Idempotency key; the same key never refunds twice.")
@OPERATOR
def refund(
    purchase_id: str, amount: int | None, force: bool, key: str | None, operator: str | None
) -> None:
    """Refund a purchase through the payment provider; its webhook then claws tokens back."""
    admin = _operator(operator)
    gateway = services().payments
    gateway.deliver_in_foreground()
    try:
        result = services().admin_actions.refund(
            admin, purchase_id, _request(key), amount=amount, force=force
        )
    except PaymentsError as exc:
        raise click.ClickException(f"the payment provider refused: {exc}") from exc
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    gateway.deliver_pending()
    details = result.audit.details
    click.echo(
        f"purchase {purchase_id}: {details.get('unspent_tokens')} unspent tokens cover a refund"
        f" of at most {details.get('max_covered')}; refunding {details.get('amount')}"
    )
    click.echo(
        f"refund {details.get('refund_id')}: {details.get('amount')} {details.get('currency')};"
        f" the webhook takes the tokens back (audit {result.audit.id})"
    )


@tokens_cli.command("release-expired-holds")
def release_expired_holds() -> None:
    """Release every hold past its expiry, and cancel embedded payments' intents as old as
    a checkout session can be (run it periodically, e.g. from Cloud Scheduler)."""
    released = services().ledger.release_expired_holds()
    click.echo(f"released {released} expired holds")
    gateway = services().payments
    gateway.deliver_in_foreground()
    try:
        canceled = services().fulfilment.intents.cancel_stale()
    except PaymentsError as exc:
        raise click.ClickException(f"the payment provider did not answer: {exc}") from exc
    gateway.deliver_pending()
    click.echo(f"canceled {canceled} unpaid payment intents past the checkout expiry")
