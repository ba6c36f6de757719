"""Who is an admin: the one rule for the dashboard and the operator's JSON API."""

from __future__ import annotations

from config import Settings
from services.payments.model import User


def is_admin(user: User, settings: Settings, admin_claim: bool) -> bool:
    """An allow-listed user id (ADMIN_USER_IDS) or email (OPERATOR_EMAILS), or a Firebase
    ID token carrying the custom claim admin=true."""
    if admin_claim or user.id in settings.admin_user_ids:
        return True
    return bool(user.email) and str(user.email).lower() in settings.operator_emails
