"""Store records built directly, for tests that seed a store without the app."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from services.ledger.model import format_time
from services.payments.model import Purchase, PurchaseState


def purchase_record(
    purchase_id: str,
    buyer_id: str,
    at: datetime,
    state: PurchaseState = PurchaseState.PENDING,
    **changes: Any,
) -> Purchase:
    """A popular-pack purchase (110 tokens for 999 usd) created at ``at``; ``changes`` override."""
    stamp = format_time(at)
    made = Purchase(
        id=purchase_id,
        buyer_id=buyer_id,
        user_id=buyer_id,
        pack_id="popular",
        tokens=110,
        amount=999,
        currency="usd",
        state=state,
        created_at=stamp,
        updated_at=stamp,
        session_id=f"cs_{purchase_id}",
    )
    return replace(made, **changes)
