"""Usage sessions (metered use, such as a call billed by the minute) as pure rules.

A session is a hold that is captured in increments instead of once. Its hold
amount is what is left of the reserve; ``Account.metered`` counts what was
captured. A top-up grows the reserve while the available balance allows; the
close removes the hold, releasing the rest. After expiry a session takes no
more increments and keeps what was captured until it is closed.

``plan_usage`` says what one operation does to the account; ``rules.plan``
turns that into one balanced journal transaction, the same on every store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from services.errors import (
    InsufficientBalance,
    InvalidAmount,
    ReserveExceeded,
    UsageSessionExpired,
    UsageSessionNotFound,
)
from services.ledger.model import Account, Operation, OpKind, TxnType, format_time, parse_time

MAX_SESSION_S = 86_400  # the longest a hold may last, and so a session between top-ups
USAGE_KINDS = frozenset(
    {OpKind.USAGE_START, OpKind.USAGE_CHARGE, OpKind.USAGE_TOP_UP, OpKind.USAGE_CLOSE}
)
# Session ids are the start transaction's id; anything else cannot name a session.
_SESSION_ID = re.compile(r"^txn_[0-9a-f]{32}$")

SpendCheck = Callable[[Account, int, str], None]


@dataclass(frozen=True)
class UsageStep:
    """The account after one usage operation, and facts the transaction records."""

    spent: int  # tokens leaving the balance: non-zero for charges only
    holds: dict[str, tuple[int, str]]
    metered: dict[str, int]
    # Kept in the transaction's refs, so that a replayed key answers as the first time.
    facts: dict[str, str]


def validate_session_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise UsageSessionNotFound(f"no usage session {str(session_id)[:80]!r}")
    return session_id


def start_op(user_id: str, amount: int, *, key: str, ttl_s: int, reason: str) -> Operation:
    refs = {"ttl_s": _ttl_text(ttl_s)}
    return Operation(
        OpKind.USAGE_START, key, user_id, amount, TxnType.USAGE_START, reason, refs=refs
    )


def charge_op(
    user_id: str, session_id: str, amount: int, *, key: str, reason: str = ""
) -> Operation:
    refs = {"session_id": validate_session_id(session_id)}
    return Operation(OpKind.USAGE_CHARGE, key, user_id, amount, TxnType.USAGE, reason, refs=refs)


def top_up_op(
    user_id: str, session_id: str, amount: int, *, key: str, ttl_s: int | None
) -> Operation:
    refs = {"session_id": validate_session_id(session_id)}
    if ttl_s is not None:
        refs["ttl_s"] = _ttl_text(ttl_s)
    return Operation(
        OpKind.USAGE_TOP_UP, key, user_id, amount, TxnType.USAGE_TOP_UP, "topped up", refs=refs
    )


def close_op(user_id: str, session_id: str) -> Operation:
    """Closing moves no tokens (amount 0); one key per session, so it happens once."""
    refs = {"session_id": validate_session_id(session_id)}
    return Operation(
        OpKind.USAGE_CLOSE,
        f"close:{session_id}",
        user_id,
        0,
        TxnType.USAGE_CLOSE,
        "session closed",
        refs=refs,
    )


def _ttl_text(ttl_s: object) -> str:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
        raise InvalidAmount(f"ttl must be a whole number of seconds, got {ttl_s!r}")
    return str(ttl_s)


def _expiry(op: Operation, now: str) -> str:
    ttl = op.refs.get("ttl_s", "")
    if not ttl.isascii() or not ttl.isdigit() or not 0 < int(ttl) <= MAX_SESSION_S:
        raise InvalidAmount(f"a session lasts 1 to {MAX_SESSION_S} seconds, got {ttl!r}")
    return format_time(parse_time(now) + timedelta(seconds=int(ttl)))


def plan_usage(op: Operation, account: Account, now: str, check_spendable: SpendCheck) -> UsageStep:
    """What ``op`` does to ``account`` at ``now``, or the DomainError that forbids it."""
    holds, metered = account.kept_holds(now), dict(account.metered)
    if op.kind is OpKind.USAGE_START:
        expires = _expiry(op, now)
        check_spendable(account, op.amount, now)
        holds[op.transaction_id] = (op.amount, expires)
        metered[op.transaction_id] = 0
        return UsageStep(0, holds, metered, {"expires_at": expires})
    session_id = op.refs.get("session_id", "")
    if session_id not in metered or session_id not in holds:
        raise UsageSessionNotFound(f"no open usage session {session_id!r}: closed, or not yours")
    (remaining, until), captured = holds[session_id], metered[session_id]
    if op.kind is OpKind.USAGE_CLOSE:
        del holds[session_id], metered[session_id]
        return UsageStep(0, holds, metered, {"captured": str(captured), "released": str(remaining)})
    if until <= now:
        raise UsageSessionExpired(
            f"usage session expired at {until}; it keeps the {captured} tokens captured"
        )
    if op.kind is OpKind.USAGE_TOP_UP:
        check_spendable(account, op.amount, now)
        if "ttl_s" in op.refs:
            until = max(until, _expiry(op, now))  # a top-up never shortens a session
        holds[session_id] = (remaining + op.amount, until)
        return UsageStep(
            0, holds, metered, {"remaining": str(remaining + op.amount), "expires_at": until}
        )
    return _charge(op, account, (holds, metered), session_id)


def _charge(
    op: Operation,
    account: Account,
    state: tuple[dict[str, tuple[int, str]], dict[str, int]],
    session_id: str,
) -> UsageStep:
    holds, metered = state
    (remaining, until), captured = holds[session_id], metered[session_id]
    if op.amount > remaining:
        raise ReserveExceeded(
            f"cannot charge {op.amount}: {remaining} tokens of the reserve are left; top up first"
        )
    if op.amount > account.balance:  # a clawback may have taken held tokens
        raise InsufficientBalance(f"balance is {account.balance} tokens, {op.amount} needed")
    holds[session_id] = (remaining - op.amount, until)
    metered[session_id] = captured + op.amount
    facts = {"captured": str(captured + op.amount), "remaining": str(remaining - op.amount)}
    return UsageStep(op.amount, holds, metered, facts)
