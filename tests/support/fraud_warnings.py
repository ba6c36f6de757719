"""Signed-event helpers for early fraud warnings."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.purchases import event
from tests.support.stripe_fixtures import fixture


def warning_event(
    payment_intent: str | None, actionable: bool = True, warning_id: str | None = None
) -> dict[str, Any]:
    """``radar.early_fraud_warning.created`` for the charge of ``payment_intent``."""
    warning = fixture(
        "radar.early_fraud_warning",
        id=warning_id or f"issfr_{uuid.uuid4().hex[:20]}",
        actionable=actionable,
        charge=f"ch_{(payment_intent or 'unknown')[3:]}",
        payment_intent=payment_intent,
        fraud_type="made_with_stolen_card",
    )
    return event("radar.early_fraud_warning.created", warning)
