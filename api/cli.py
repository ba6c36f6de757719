"""Operator commands: ``flask --app app tokens ...``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from api.deps import services
from services.payments.checkout import PRICE_IDS_SETTING

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


def register_cli(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
