"""TokenLedger: the ledger operations and reads that the rest of the app calls.

Input is validated here, before the store is touched, so bad input changes
nothing. Each balance change is one ``LedgerStore.apply`` call: atomic and
idempotent on its key.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from services.errors import (
    DebtRepaymentTooLarge,
    DomainError,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAmount,
    InvalidCursor,
    TransactionNotFound,
)
from services.ledger.model import (
    Account,
    Entry,
    HistoryPosition,
    JournalTransaction,
    Operation,
    OpKind,
    TxnType,
    format_time,
    transaction_id_for,
    utc_now,
)
from services.ledger.rules import validate, validate_user_id
from services.ledger.usage import close_op
from services.store.port import LedgerStore

MAX_PAGE = 100


@dataclass(frozen=True)
class HistoryPage:
    entries: list[Entry]
    next_cursor: str | None


_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def encode_cursor(position: HistoryPosition) -> str:
    """``p<seq>.<balance>.<entry id>``; older cursors were ``s<seq>``, still read."""
    text = f"s{position.seq}"
    if position.balance is not None and position.entry_id is not None:
        text = f"p{position.seq}.{position.balance}.{position.entry_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _parse_cursor(text: str) -> HistoryPosition:
    if text.startswith("s"):
        return HistoryPosition(int(text[1:]))
    if not text.startswith("p"):
        raise ValueError(text)
    seq, balance, entry_id = text[1:].split(".")
    if not _ENTRY_ID.match(entry_id) or int(balance) < 0:
        raise ValueError(text)
    return HistoryPosition(int(seq), int(balance), entry_id)


def decode_cursor(cursor: str) -> HistoryPosition:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        position = _parse_cursor(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not one this service issued") from exc
    if position.seq < 1:
        raise InvalidCursor("the cursor is not one this service issued")
    return position


class TokenLedger:
    def __init__(self, store: LedgerStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def _apply(self, op: Operation) -> JournalTransaction:
        return self.store.apply(validate(op), self.clock())

    def open_account(self, user_id: str) -> Account:
        return self.store.open_account(validate_user_id(user_id), self.clock())

    def credit(
        self,
        user_id: str,
        amount: int,
        *,
        key: str,
        type: TxnType = TxnType.PURCHASE,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        """Tokens issued to a user: a purchase, a grant or a dispute won."""
        return self._apply(
            Operation(OpKind.CREDIT, key, user_id, amount, type, reason, refs=refs or {})
        )

    def spend(
        self,
        user_id: str,
        amount: int,
        *,
        key: str,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        return self._apply(
            Operation(OpKind.DEBIT, key, user_id, amount, TxnType.SPEND, reason, refs=refs or {})
        )

    def debit(
        self,
        user_id: str,
        amount: int,
        *,
        key: str,
        type: TxnType,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        """Take tokens from the available balance for something other than spending on
        the platform: an operator's downward adjustment."""
        return self._apply(
            Operation(OpKind.DEBIT, key, user_id, amount, type, reason, refs=refs or {})
        )

    def transfer(
        self,
        sender_id: str,
        recipient_id: str,
        amount: int,
        *,
        key: str,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        return self._apply(
            Operation(
                OpKind.TRANSFER,
                key,
                sender_id,
                amount,
                TxnType.TRANSFER,
                reason,
                counterparty_id=recipient_id,
                refs=refs or {},
            )
        )

    def clawback(
        self,
        user_id: str,
        amount: int,
        *,
        key: str,
        type: TxnType = TxnType.REFUND,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        """Take tokens back; what the balance cannot cover is recorded as debt."""
        return self._apply(
            Operation(OpKind.CLAWBACK, key, user_id, amount, type, reason, refs=refs or {})
        )

    def repay_debt(
        self,
        user_id: str,
        amount: int,
        *,
        key: str,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
    ) -> JournalTransaction:
        return self._apply(
            Operation(
                OpKind.REPAY_DEBT,
                key,
                user_id,
                amount,
                TxnType.DEBT_REPAYMENT,
                reason,
                refs=refs or {},
            )
        )

    def settle_debt(self, user_id: str, after_txn_id: str) -> JournalTransaction | None:
        """After a credit, repay as much debt as the balance covers; the history shows it.

        Keyed on the credit, so running it again for the same credit repays nothing more.
        """
        account = self.store.get_account(user_id)
        amount = min(account.debt, account.balance)
        if amount <= 0:
            return None
        try:
            return self.repay_debt(
                user_id, amount, key=f"repay:{after_txn_id}", reason="repaid from the next credit"
            )
        except (InsufficientBalance, DebtRepaymentTooLarge, IdempotencyConflict):
            return None  # a concurrent change got there first; the next credit repays

    def hold(
        self, user_id: str, amount: int, *, key: str, ttl_s: int, reason: str = ""
    ) -> JournalTransaction:
        """Reserve tokens for work that may fail; capture or release them later.

        The hold's id is the returned transaction's id. Until it is settled or
        expires, the tokens count in the balance but are not available.
        """
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
            raise InvalidAmount(f"ttl must be a whole number of seconds, got {ttl_s!r}")
        return self._apply(
            Operation(
                OpKind.HOLD, key, user_id, amount, TxnType.HOLD, reason, refs={"ttl_s": str(ttl_s)}
            )
        )

    def capture(
        self, user_id: str, hold_id: str, amount: int, reason: str = ""
    ) -> JournalTransaction:
        """Spend ``amount`` (at most the hold) from a hold; the rest is released."""
        return self._settle(
            Operation(
                OpKind.CAPTURE,
                f"settle:{hold_id}",
                user_id,
                amount,
                TxnType.SPEND,
                reason,
                refs={"hold_id": hold_id},
            )
        )

    def release(self, user_id: str, hold_id: str) -> JournalTransaction:
        """Give a hold's tokens back to the available balance, spending nothing."""
        account = self.store.get_account(validate_user_id(user_id))
        if hold_id in account.metered:  # a usage session: closing it releases the rest
            return self._apply(close_op(user_id, hold_id))
        hold = account.holds.get(hold_id)
        if hold is None:
            return self._settled(user_id, hold_id, OpKind.RELEASE)
        return self._settle(
            Operation(
                OpKind.RELEASE,
                f"settle:{hold_id}",
                user_id,
                hold[0],
                TxnType.HOLD_RELEASE,
                "released",
                refs={"hold_id": hold_id},
            )
        )

    def _settle(self, op: Operation) -> JournalTransaction:
        """A hold settles once: capture and release share a key, so the loser is refused."""
        try:
            return self._apply(op)
        except IdempotencyConflict as exc:
            raise HoldNotFound(f"hold {op.refs['hold_id']} is already settled") from exc

    def _settled(self, user_id: str, hold_id: str, kind: OpKind) -> JournalTransaction:
        txn = self.store.get_transaction(transaction_id_for(f"settle:{hold_id}"))
        # Hold ids are not secret: another user's settled hold is "not found" to this one.
        mine = txn is not None and any(e.user_id == user_id for e in txn.entries)
        if txn is None or txn.kind is not kind or not mine:
            raise HoldNotFound(f"no open hold {hold_id!r}: it expired, or was captured or released")
        return txn

    def release_expired_holds(self) -> int:
        """The periodic task: release every expired hold, so the history shows it."""
        now = format_time(self.clock())
        released = 0
        for account in self.store.iter_accounts():
            for hold_id, (_, until) in account.holds.items():
                if until <= now:
                    self.release(account.user_id, hold_id)
                    released += 1
        return released

    def balance(self, user_id: str) -> Account:
        return self.store.get_account(validate_user_id(user_id))

    def history(
        self,
        user_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        txn_type: str | None = None,
    ) -> HistoryPage:
        """The user's entries, newest first; ``next_cursor`` is None on the last page."""
        validate_user_id(user_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise DomainError(f"limit must be a whole number from 1 to {MAX_PAGE}")
        if txn_type is not None and txn_type not in set(TxnType):
            raise DomainError(f"unknown transaction type {txn_type!r}")
        before = decode_cursor(cursor) if cursor else None
        # One extra row tells whether another page exists.
        rows = self.store.list_entries(user_id, limit + 1, before, txn_type)
        page = rows[:limit]
        last = page[-1] if page else None
        if len(rows) <= limit or last is None or last.seq is None:
            return HistoryPage(page, None)
        start = None if last.balance_after is None else last.balance_after - last.amount
        return HistoryPage(page, encode_cursor(HistoryPosition(last.seq, start, last.id)))

    def transaction(self, txn_id: str) -> JournalTransaction:
        txn = self.store.get_transaction(txn_id)
        if txn is None:
            raise TransactionNotFound(f"no journal transaction {txn_id}")
        return txn
