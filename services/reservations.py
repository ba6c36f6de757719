"""Holds and metered-usage sessions on behalf of a signed-in user.

The key policy lives here, not in the HTTP layer: the client's Idempotency-Key,
namespaced per user and kind (and per session for a session's charges), so the
same key on another user, kind or session is another operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.ledger.model import format_time, utc_now
from services.ledger.usage import validate_session_id
from services.tokens import TokenLedger
from services.transfers import client_key
from services.usage import UsageMeter, UsageSession

DEFAULT_HOLD_S = 600
DEFAULT_SESSION_S = 600


@dataclass(frozen=True)
class PlacedHold:
    hold_id: str
    amount: Any  # the amount held; as sent when the hold is already settled
    expires_at: str | None  # None: captured or released meanwhile
    available: int


class Reservations:
    def __init__(self, ledger: TokenLedger, meter: UsageMeter) -> None:
        self.ledger = ledger
        self.meter = meter

    def _available(self, user_id: str) -> int:
        return self.ledger.balance(user_id).available(format_time(utc_now()))

    def hold(
        self, user_id: str, amount: Any, reason: str, ttl_s: Any, key: str | None
    ) -> PlacedHold:
        """``amount`` and ``ttl_s`` come straight from JSON; the ledger refuses bad ones."""
        txn = self.ledger.hold(
            user_id,
            amount,
            key=client_key("hold", user_id, key),
            ttl_s=DEFAULT_HOLD_S if ttl_s is None else ttl_s,
            reason=reason,
        )
        account = self.ledger.balance(user_id)
        held, until = account.holds.get(txn.id, (amount, None))
        return PlacedHold(txn.id, held, until, account.available(format_time(utc_now())))

    def start_session(
        self, user_id: str, amount: Any, reason: str, ttl_s: Any, key: str | None
    ) -> tuple[UsageSession, int]:
        """The new session and what the user has available after reserving for it."""
        txn = self.meter.start(
            user_id,
            amount,
            key=client_key("usage", user_id, key),
            ttl_s=DEFAULT_SESSION_S if ttl_s is None else ttl_s,
            reason=reason,
        )
        return self.meter.session(user_id, txn.id), self._available(user_id)

    @staticmethod
    def session_key(kind: str, session_id: str, key: str | None) -> str:
        """Per session: the same key on another session is another charge."""
        return client_key(kind, validate_session_id(session_id), key)
