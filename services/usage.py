"""UsageMeter: metered use (a call billed by the minute) over the ledger's usage sessions.

Each method is one ``LedgerStore.apply``: atomic, and idempotent on its key.
The rules live in services/ledger/usage.py, so every store applies them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import IdempotencyConflict, UsageSessionNotFound
from services.ledger.model import JournalTransaction, Operation, format_time, transaction_id_for
from services.ledger.rules import validate, validate_user_id
from services.ledger.usage import (
    charge_op,
    close_op,
    start_op,
    top_up_op,
    validate_session_id,
)
from services.tokens import TokenLedger


@dataclass(frozen=True)
class UsageSession:
    id: str
    state: str  # "open", "expired" (takes no more charges) or "closed"
    reserved: int  # captured plus what is left of the reserve
    captured: int
    remaining: int  # what can still be charged: 0 unless open
    expires_at: str | None  # None once closed


class UsageMeter:
    def __init__(self, ledger: TokenLedger) -> None:
        self.ledger = ledger

    def _apply(self, op: Operation) -> JournalTransaction:
        return self.ledger.store.apply(validate(op), self.ledger.clock())

    def start(
        self, user_id: str, amount: int, *, key: str, ttl_s: int, reason: str = ""
    ) -> JournalTransaction:
        """Reserve ``amount`` tokens; the session's id is the returned transaction's id."""
        return self._apply(start_op(user_id, amount, key=key, ttl_s=ttl_s, reason=reason))

    def charge(
        self, user_id: str, session_id: str, amount: int, *, key: str, reason: str = ""
    ) -> JournalTransaction:
        """Spend one increment from the reserve; the same key returns the first charge."""
        return self._apply(charge_op(user_id, session_id, amount, key=key, reason=reason))

    def top_up(
        self, user_id: str, session_id: str, amount: int, *, key: str, ttl_s: int | None = None
    ) -> JournalTransaction:
        """Grow the reserve from the available balance; ``ttl_s`` moves the expiry later."""
        return self._apply(top_up_op(user_id, session_id, amount, key=key, ttl_s=ttl_s))

    def close(self, user_id: str, session_id: str) -> JournalTransaction:
        """End the session, releasing what it did not use; closing again returns the same."""
        try:
            return self._apply(close_op(user_id, session_id))
        except IdempotencyConflict as exc:  # closed by its owner, and this is someone else
            raise UsageSessionNotFound(f"no usage session {session_id!r}") from exc

    def session(self, user_id: str, session_id: str) -> UsageSession:
        sid = validate_session_id(session_id)
        account = self.ledger.balance(validate_user_id(user_id))
        if sid in account.metered and sid in account.holds:
            remaining, until = account.holds[sid]
            captured = account.metered[sid]
            is_open = until > format_time(self.ledger.clock())
            state = "open" if is_open else "expired"
            left = remaining if is_open else 0
            return UsageSession(sid, state, captured + remaining, captured, left, until)
        closed = self.ledger.store.get_transaction(transaction_id_for(f"close:{sid}"))
        if closed is None or not any(e.user_id == user_id for e in closed.entries):
            raise UsageSessionNotFound(f"no usage session {sid!r}")
        captured, released = int(closed.refs["captured"]), int(closed.refs["released"])
        return UsageSession(sid, "closed", captured + released, captured, 0, None)
