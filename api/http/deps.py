"""Access to the services that ``create_app`` built, and the signed-in user."""

from __future__ import annotations

from typing import Any, cast

from flask import current_app, g, request, session

from config import Settings
from services.container import Services
from services.errors import InvalidPayload, NotSignedIn
from services.payments.model import User
from services.tokens import TokenLedger


def services() -> Services:
    return cast(Services, current_app.extensions["services"])


def settings() -> Settings:
    return services().settings


def ledger() -> TokenLedger:
    return services().ledger


def text_field(body: dict[str, Any], name: str) -> str:
    """An optional free-text field: anything but a string counts as absent."""
    value = body.get(name)
    return value if isinstance(value, str) else ""


def idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key")


def json_body() -> dict[str, Any]:
    """The request's JSON object; malformed JSON is a 400 with a message, not an empty body."""
    try:
        body = request.get_json(silent=True)
    except RecursionError as exc:  # the JSON parser recurses once per nesting level
        raise InvalidPayload("the body nests too deeply") from exc
    if body is None and request.get_data():
        raise InvalidPayload("the body is not valid JSON")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidPayload("the body must be a JSON object")
    return body


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_user() -> User:
    """The caller, from a Firebase bearer token or the session cookie; else 401."""
    if "user" in g:
        return cast(User, g.user)
    token = bearer_token()
    if token is not None:
        identity = services().auth.verify_bearer(token)
        user, g.admin_claim, g.verified_email = (
            identity.user,
            identity.admin_claim,
            identity.verified_email,
        )
    elif isinstance(session.get("sid"), str):
        record = services().sessions.resolve(str(session["sid"]))
        user = services().auth.from_session(record.user_id)
        g.admin_claim, g.verified_email = record.admin_claim, record.operator_email
    elif "user_id" in session:  # a cookie from before server-side sessions: sign in again
        raise NotSignedIn("the session has ended; sign in again")
    else:
        raise NotSignedIn("sign in first")
    g.user = user
    return user


def admin_claim() -> bool:
    """Whether the caller's Firebase ID token carries admin=true.

    A bearer token is read as sent; a cookie session has the claim as of its last
    check with Firebase (at most SESSION_RECHECK_SECONDS old).
    """
    current_user()
    return bool(g.get("admin_claim", False))


def verified_email() -> str | None:
    """The caller's email as far as it may grant operator rights (see access.is_admin)."""
    current_user()
    email = g.get("verified_email")
    return email if isinstance(email, str) else None
