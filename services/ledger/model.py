"""Value objects of the journal: accounts, entries and journal transactions.

Amounts are Python ints throughout. Timestamps are aware UTC datetimes,
stored as fixed-width ISO 8601 strings so that they sort as text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

USER_PREFIX = "user:"


class SystemAccount(StrEnum):
    """The other side of every movement; their totals come from the journal."""

    ISSUANCE = "system:issuance"  # tokens created by purchases and grants
    SPEND = "system:spend"  # tokens used on the platform's features
    CLAWBACK = "system:clawback"  # tokens taken back after refunds and disputes


class OpKind(StrEnum):
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    CREDIT = "credit"
    DEBIT = "debit"
    TRANSFER = "transfer"
    CLAWBACK = "clawback"
    # Tokens a clawback follows to an account the buyer sent them to: taken from
    # that account as far as it holds them, and off the buyer's debt.
    CLAWBACK_HOP = "clawback_hop"
    REPAY_DEBT = "repay_debt"
    # A usage session: a hold captured in increments, topped up, then closed.
    USAGE_START = "usage_start"
    USAGE_CHARGE = "usage_charge"
    USAGE_TOP_UP = "usage_top_up"
    USAGE_CLOSE = "usage_close"


class TxnType(StrEnum):
    """What a journal transaction means to a person reading their history."""

    PURCHASE = "purchase"
    GRANT = "grant"
    SPEND = "spend"
    TRANSFER = "transfer"
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_REVERSAL = "dispute_reversal"
    REFUND_REVERSAL = "refund_reversal"  # a refund failed or was canceled: tokens returned
    DEBT_REPAYMENT = "debt_repayment"
    CLAWBACK_HOP = "clawback_hop"  # clawed back from whom the buyer sent the tokens to
    HOLD = "hold"
    HOLD_RELEASE = "hold_release"
    ADJUSTMENT = "adjustment"  # an operator's correction, up or down, with a reason
    USAGE_START = "usage_start"  # tokens reserved for metered use
    USAGE = "usage"  # one increment of metered use, spent
    USAGE_TOP_UP = "usage_top_up"  # more tokens reserved for the same session
    USAGE_CLOSE = "usage_close"  # the session ended; what it did not use is released


# Which journal types each operation may carry, and the system account
# standing on the other side of the user.
ALLOWED_TYPES: Mapping[OpKind, frozenset[TxnType]] = {
    OpKind.CREDIT: frozenset(
        {
            TxnType.PURCHASE,
            TxnType.GRANT,
            TxnType.DISPUTE_REVERSAL,
            TxnType.REFUND_REVERSAL,
            TxnType.ADJUSTMENT,
        }
    ),
    OpKind.DEBIT: frozenset({TxnType.SPEND, TxnType.ADJUSTMENT}),
    OpKind.TRANSFER: frozenset({TxnType.TRANSFER}),
    OpKind.CLAWBACK: frozenset({TxnType.REFUND, TxnType.DISPUTE}),
    OpKind.CLAWBACK_HOP: frozenset({TxnType.CLAWBACK_HOP}),
    OpKind.REPAY_DEBT: frozenset({TxnType.DEBT_REPAYMENT}),
    OpKind.HOLD: frozenset({TxnType.HOLD}),
    OpKind.CAPTURE: frozenset({TxnType.SPEND}),
    OpKind.RELEASE: frozenset({TxnType.HOLD_RELEASE}),
    OpKind.USAGE_START: frozenset({TxnType.USAGE_START}),
    OpKind.USAGE_CHARGE: frozenset({TxnType.USAGE}),
    OpKind.USAGE_TOP_UP: frozenset({TxnType.USAGE_TOP_UP}),
    OpKind.USAGE_CLOSE: frozenset({TxnType.USAGE_CLOSE}),
}
COUNTER_ACCOUNT: Mapping[TxnType, SystemAccount] = {
    TxnType.PURCHASE: SystemAccount.ISSUANCE,
    TxnType.GRANT: SystemAccount.ISSUANCE,
    TxnType.DISPUTE_REVERSAL: SystemAccount.CLAWBACK,
    TxnType.REFUND_REVERSAL: SystemAccount.CLAWBACK,
    TxnType.SPEND: SystemAccount.SPEND,
    TxnType.REFUND: SystemAccount.CLAWBACK,
    TxnType.DISPUTE: SystemAccount.CLAWBACK,
    TxnType.DEBT_REPAYMENT: SystemAccount.CLAWBACK,
    TxnType.CLAWBACK_HOP: SystemAccount.CLAWBACK,
    TxnType.HOLD: SystemAccount.SPEND,
    TxnType.HOLD_RELEASE: SystemAccount.SPEND,
    # An adjustment corrects what was issued, so it stands against issuance.
    TxnType.ADJUSTMENT: SystemAccount.ISSUANCE,
    TxnType.USAGE_START: SystemAccount.SPEND,
    TxnType.USAGE: SystemAccount.SPEND,
    TxnType.USAGE_TOP_UP: SystemAccount.SPEND,
    TxnType.USAGE_CLOSE: SystemAccount.SPEND,
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds, e.g. 2026-01-02T03:04:05.000006Z.

    A naive datetime is refused: Python would read it in the process's local
    time zone, and a stored time must not depend on where the process runs.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("format_time needs an aware datetime, got a naive one")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def user_account(user_id: str) -> str:
    return USER_PREFIX + user_id


def transaction_id_for(key: str) -> str:
    """Journal transaction ids derive from the idempotency key.

    The transaction document then doubles as the idempotency record: reading
    it inside the store transaction tells whether the key was used.
    """
    return "txn_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Account:
    user_id: str
    balance: int = 0
    debt: int = 0
    seq: int = 0  # number of journal entries on this account so far
    created_at: str = ""
    # Open holds: hold id -> (tokens, expires_at). An expired hold stops counting
    # at once and is dropped at the account's next write: released on next access.
    holds: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    # Holds that are usage sessions: hold id -> tokens captured so far. Such a
    # hold's amount is what is left of its reserve; it stays after expiry until
    # closed, so the close records what was captured.
    metered: Mapping[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "debt" if self.debt > 0 else "active"

    def active_holds(self, now: str) -> dict[str, tuple[int, str]]:
        return {k: v for k, v in self.holds.items() if v[1] > now}

    def kept_holds(self, now: str) -> dict[str, tuple[int, str]]:
        """The holds a write keeps: active ones, and usage sessions until they are closed."""
        return {k: v for k, v in self.holds.items() if v[1] > now or k in self.metered}

    def held(self, now: str) -> int:
        return min(self.balance, sum(amount for amount, _ in self.active_holds(now).values()))

    def available(self, now: str) -> int:
        return self.balance - self.held(now)

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict would deep-copy the holds only to replace them.
        return {
            "user_id": self.user_id,
            "balance": self.balance,
            "debt": self.debt,
            "seq": self.seq,
            "created_at": self.created_at,
            "holds": self.stored_holds(),
        }

    def stored_holds(self) -> dict[str, list[Any]]:
        """The holds as adapters store them: a session's captured count rides in its hold."""
        return {
            k: [amount, until] + ([self.metered[k]] if k in self.metered else [])
            for k, (amount, until) in self.holds.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        holds = data.get("holds") or {}
        return cls(
            user_id=str(data["user_id"]),
            balance=int(data["balance"]),
            debt=int(data["debt"]),
            seq=int(data["seq"]),
            created_at=str(data["created_at"]),
            holds={k: (int(v[0]), str(v[1])) for k, v in holds.items()},
            metered={k: int(v[2]) for k, v in holds.items() if len(v) > 2},
        )


@dataclass(frozen=True)
class Operation:
    """A request to move tokens; its fingerprint decides idempotent replays."""

    kind: OpKind
    key: str
    user_id: str
    amount: int
    type: TxnType
    reason: str = ""
    counterparty_id: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def transaction_id(self) -> str:
        return transaction_id_for(self.key)

    @property
    def user_ids(self) -> tuple[str, ...]:
        if self.counterparty_id is None:
            return (self.user_id,)
        return (self.user_id, self.counterparty_id)

    def fingerprint(self) -> str:
        body = {
            "kind": str(self.kind),
            "user_id": self.user_id,
            "amount": self.amount,
            "type": str(self.type),
            "reason": self.reason,
            "counterparty_id": self.counterparty_id,
            "refs": dict(sorted(self.refs.items())),
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One line of a journal transaction: a signed amount on one account."""

    txn_id: str
    index: int
    account: str
    amount: int
    type: TxnType
    created_at: str
    user_id: str | None = None  # set on user accounts only
    seq: int | None = None  # position in the user's history
    balance_after: int | None = None
    debt_after: int | None = None
    counterparty_id: str | None = None
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.txn_id}-{self.index}"

    def to_dict(self) -> dict[str, Any]:
        # The fields are scalars: a copy of the instance's own, not asdict's deep one,
        # which was about 4% of a paid event's client CPU on the emulator.
        data = dict(vars(self))
        data["type"] = str(self.type)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        values = dict(data)
        values["type"] = TxnType(values["type"])
        return cls(**values)


@dataclass(frozen=True)
class HistoryPosition:
    """Where a history page ended: the next page holds the entries older than one entry.

    ``seq`` is that entry's position in the user's history. ``balance`` (the balance
    before it) and ``entry_id`` let a store that derives balances walk on from
    there; a position with ``seq`` alone comes from an older cursor.
    """

    seq: int
    balance: int | None = None
    entry_id: str | None = None


@dataclass(frozen=True)
class JournalTransaction:
    id: str
    key: str
    fingerprint: str
    kind: OpKind
    type: TxnType
    reason: str
    refs: Mapping[str, str]
    created_at: str
    entries: tuple[Entry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "kind": str(self.kind),
            "type": str(self.type),
            "reason": self.reason,
            "refs": dict(self.refs),
            "created_at": self.created_at,
            "entries": [entry.to_dict() for entry in self.entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalTransaction:
        return cls(
            id=str(data["id"]),
            key=str(data["key"]),
            fingerprint=str(data["fingerprint"]),
            kind=OpKind(data["kind"]),
            type=TxnType(data["type"]),
            reason=str(data["reason"]),
            refs=dict(data["refs"]),
            created_at=str(data["created_at"]),
            entries=tuple(Entry.from_dict(item) for item in data["entries"]),
        )

    def user_entry(self, user_id: str) -> Entry:
        return next(e for e in self.entries if e.user_id == user_id)
