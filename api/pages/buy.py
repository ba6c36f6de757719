"""/buy-tokens: the pack cards, and hosted checkout started by a plain form (no JS needed)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

from flask import Blueprint, Response, redirect, render_template, request

from api.http import deps
from api.http.redirects import signin_required
from api.pages.context import money
from config.catalog import Catalog, Pack
from services.errors import PurchaseLimitReached, TokenStoreError, UnknownPackage
from services.payments.port import PaymentsError
from services.transfers import MAX_CLIENT_KEY

log = logging.getLogger("token_store.pages")
bp = Blueprint("buy", __name__)
BEST_VALUE = "Best value"
PAYMENTS_DOWN = "Payments are temporarily unavailable. Please try again in a minute."
PAYMENTS_FAILED = "The payment provider could not start this payment. Please contact support."


@dataclass(frozen=True)
class PackView:
    """A pack as its card shows it; every amount is computed in integer minor units."""

    pack: Pack
    price: str
    per_100: str
    badges: tuple[str, ...]
    form_key: str  # one checkout per rendered card, however often the form is posted

    @property
    def featured(self) -> bool:
        return bool(self.badges)


def price_per_100(pack: Pack) -> int:
    """Minor units per 100 tokens, rounded half up."""
    return (pack.price_cents * 100 + pack.tokens // 2) // pack.tokens


def best_value_id(packs: list[Pack]) -> str | None:
    """The cheapest pack per token, unless the catalog already names its best value."""
    if any("best value" in (p.badge or "").lower() for p in packs):
        return None
    candidates = [p for p in packs if p.available and p.currency == packs[0].currency]
    if len(candidates) < 2:
        return None
    return min(candidates, key=lambda p: Fraction(p.price_cents, p.tokens)).id


def _badges(pack: Pack, best: str | None) -> tuple[str, ...]:
    badges = [pack.badge.capitalize()] if pack.badge else []
    if pack.id == best:
        badges.append(BEST_VALUE)
    return tuple(badges)


def pack_views(catalog: Catalog) -> list[PackView]:
    packs = list(catalog)
    best = best_value_id(packs)
    return [
        PackView(
            pack=pack,
            price=money(pack.price_cents, pack.currency),
            per_100=money(price_per_100(pack), pack.currency),
            badges=_badges(pack, best),
            form_key=uuid.uuid4().hex,
        )
        for pack in packs
    ]


def wait_text(seconds: int) -> str:
    """Retry-After as a person reads it: "40 seconds", "12 minutes", "2 hours"."""
    if seconds < 60:
        value, unit = max(seconds, 1), "second"
    elif seconds < 3600:
        value, unit = -(-seconds // 60), "minute"
    else:
        value, unit = -(-seconds // 3600), "hour"
    return f"{value} {unit}{'' if value == 1 else 's'}"


def limit_message(retry_after_s: int) -> str:
    return (
        "You've reached the purchase limit for now. "
        f"You can buy again in about {wait_text(retry_after_s)}."
    )


def render_buy_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    settings = deps.settings()
    page = render_template(
        "buy.html", packs=pack_views(settings.catalog), error=error, settings=settings
    )
    return page, status


def _form_key() -> str | None:
    key = request.form.get("idempotency_key", "").strip()
    return key if 0 < len(key) <= MAX_CLIENT_KEY else None


@bp.get("/buy-tokens")
@signin_required()
def buy_tokens() -> tuple[str, int]:
    return render_buy_page()


@bp.post("/buy-tokens/checkout")
@signin_required(back="/buy-tokens")
def checkout_form() -> Response | tuple[str, int]:
    """The Buy button without JavaScript: start hosted checkout and go there."""
    user = deps.current_user()
    try:
        _, session = deps.services().checkout.start(user, request.form.get("package"), _form_key())
    except PurchaseLimitReached as exc:
        page, status = render_buy_page(error=limit_message(exc.retry_after_s), status=429)
        return Response(page, status, headers={"Retry-After": str(exc.retry_after_s)})
    except UnknownPackage:
        return render_buy_page(error="That pack is not available any more.", status=400)
    except TokenStoreError as exc:
        return render_buy_page(error=exc.message, status=exc.http_status)
    except PaymentsError as exc:
        log.warning("checkout form: payment provider error: %s", exc)
        return render_buy_page(
            error=PAYMENTS_DOWN if exc.transient else PAYMENTS_FAILED, status=exc.http_status
        )
    return cast(Response, redirect(session.url, code=303))
