"""Who is an admin: the one rule for the dashboard and the operator's JSON API."""

from __future__ import annotations

from config import Settings
from services.payments.model import User


def is_admin(user: User, settings: Settings, admin_claim: bool, verified_email: str | None) -> bool:
    """Firebase's custom claim admin=true or an allow-listed user id (ADMIN_USER_IDS), the
    preferred ways; or an OPERATOR_EMAILS address, only when Firebase says it is verified
    (``verified_email``, from the sign-in token or the last re-check), never the stored
    email: anyone can sign up with any address."""
    if admin_claim or user.id in settings.admin_user_ids:
        return True
    return verified_email is not None and verified_email.lower() in settings.operator_emails
