"""The history as a person reads it: one line per entry, other parties by @username."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.catalog import Catalog
from services.ledger.model import Entry, TxnType

Names = dict[str, str]


def pack_name(entry: Entry, catalog: Catalog) -> str:
    """Purchase-related entries carry "<pack id> pack" as their reason."""
    pack = catalog.get(entry.reason.removesuffix(" pack"))
    return f"{pack.name} pack" if pack else entry.reason or "a pack"


def who(user_id: str | None, names: Names) -> str:
    if user_id is None:
        return "another user"
    return f"@{names[user_id]}" if user_id in names else user_id


def _purchase(entry: Entry, names: Names, catalog: Catalog) -> str:
    pack = pack_name(entry, catalog)
    if entry.counterparty_id is None:
        return f"Bought {pack}"
    if entry.amount > 0:
        return f"Gift from {who(entry.counterparty_id, names)}: {pack}"
    return f"Gift to {who(entry.counterparty_id, names)}: {pack}"


def _transfer(entry: Entry, names: Names, catalog: Catalog) -> str:
    other = who(entry.counterparty_id, names)
    return f"Tip to {other}" if entry.amount < 0 else f"Tip from {other}"


def _refund(entry: Entry, names: Names, catalog: Catalog) -> str:
    owed = f"; {entry.debt_after} owed" if entry.debt_after else ""
    return f"Refund of {pack_name(entry, catalog)}: {-entry.amount} tokens taken back{owed}"


def _hop(entry: Entry, names: Names) -> str:
    """Clawed back from a tip's recipient; the buyer's side shows its debt falling."""
    other = who(entry.counterparty_id, names)
    if entry.amount < 0:
        return f"Clawed back: {-entry.amount} tokens tipped by {other} for a refunded payment"
    return f"Clawback taken from {other}, whom you tipped; {entry.debt_after or 0} owed"


def _with_reason(text: str, entry: Entry) -> str:
    return f"{text} ({entry.reason})" if entry.reason else text


DESCRIBERS: dict[TxnType, Callable[[Entry, Names, Catalog], str]] = {
    TxnType.PURCHASE: _purchase,
    TxnType.TRANSFER: _transfer,
    TxnType.REFUND: _refund,
    TxnType.DISPUTE: lambda e, n, c: f"Disputed payment for {pack_name(e, c)}: tokens held back",
    TxnType.DISPUTE_REVERSAL: lambda e, n, c: f"Dispute won: {pack_name(e, c)} tokens returned",
    TxnType.REFUND_REVERSAL: lambda e, n, c: f"Refund failed: {pack_name(e, c)} tokens returned",
    TxnType.DEBT_REPAYMENT: lambda e, n, c: f"Debt repaid: {-e.amount} tokens",
    TxnType.CLAWBACK_HOP: lambda e, n, c: _hop(e, n),
    TxnType.GRANT: lambda e, n, c: f"Grant: {e.reason}" if e.reason else "Grant",
    TxnType.SPEND: lambda e, n, c: e.reason or "Spent",
    TxnType.HOLD: lambda e, n, c: f"Tokens reserved: {e.reason}" if e.reason else "Tokens reserved",
    TxnType.HOLD_RELEASE: lambda e, n, c: "Reserved tokens released",
    TxnType.ADJUSTMENT: lambda e, n, c: f"Adjustment: {e.reason}" if e.reason else "Adjustment",
    TxnType.USAGE_START: lambda e, n, c: _with_reason("Tokens reserved for metered use", e),
    TxnType.USAGE: lambda e, n, c: _with_reason(f"Metered use: {-e.amount} tokens", e),
    TxnType.USAGE_TOP_UP: lambda e, n, c: "More tokens reserved for metered use",
    TxnType.USAGE_CLOSE: lambda e, n, c: "Metered use ended: unused reserved tokens released",
}


def describe(entry: Entry, names: Names, catalog: Catalog) -> str:
    return DESCRIBERS[entry.type](entry, names, catalog)


def entry_json(entry: Entry, names: Names, catalog: Catalog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "type": str(entry.type),
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "created_at": entry.created_at,
        "description": describe(entry, names, catalog),
        "details": {
            "transaction_id": entry.txn_id,
            "reason": entry.reason,
            "counterparty": entry.counterparty_id,
            "counterparty_username": names.get(entry.counterparty_id or ""),
            "debt_after": entry.debt_after,
        },
    }
