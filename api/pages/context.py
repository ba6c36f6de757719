"""What every page template gets: the header's user and balance, and display filters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, has_request_context, request, session

from api.http import deps
from api.http.redirects import DEFAULT_NEXT, current_path, signin_url
from config.currencies import format_minor
from services.errors import TokenStoreError
from services.ledger.model import parse_time
from services.payments.model import User

CURRENCY_SIGNS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def money(amount_minor: int, currency: str) -> str:
    """999 usd -> "$9.99"; currencies without a common sign read "9.99 CHF"."""
    amount = format_minor(amount_minor, currency)
    sign = CURRENCY_SIGNS.get(currency.lower())
    return f"{sign}{amount}" if sign else f"{amount} {currency.upper()}"


def sentence(text: str) -> str:
    """Service messages start in lower case ("a valid email ..."); pages show sentences."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def short_time(stamp: str) -> str:
    """A stored UTC timestamp as people read it: "2 Jan 2026, 14:05 UTC"."""
    try:
        moment = parse_time(stamp)
    except ValueError:
        return stamp
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _signed_in_user() -> User | None:
    if "user_id" not in session:
        return None
    try:
        return deps.current_user()
    except TokenStoreError:  # a stale session or an unreachable store: show signed out
        return None


def _balance(user: User) -> int | None:
    try:
        return deps.ledger().balance(user.id).balance
    except TokenStoreError:
        return None


def _signin_href() -> str:
    """Sign in, then come back here; a page shown for a POST has no address to return to."""
    if request.path == "/signin":
        return current_path()
    return signin_url(None if request.method == "GET" else DEFAULT_NEXT)


def header_context() -> dict[str, Any]:
    if not has_request_context():
        return {"header_user": None, "header_balance": None, "signin_href": "/signin"}
    user = _signed_in_user()
    return {
        "header_user": user,
        "header_balance": _balance(user) if user else None,
        "signin_href": _signin_href(),
    }


def register(bp: Blueprint) -> None:
    """Registered app-wide, so sandbox and error pages get the same header."""
    bp.app_context_processor(header_context)
    bp.add_app_template_filter(money, "money")
    bp.add_app_template_filter(short_time, "short_time")
    bp.add_app_template_filter(sentence, "sentence")
