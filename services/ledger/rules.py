"""The ledger's rules as pure functions, shared by every storage adapter.

``validate`` rejects bad input before anything is read. ``plan`` turns an
operation and the current accounts into one balanced journal transaction and
the accounts after it. ``execute`` is the read-check-write sequence each
adapter runs inside one store transaction.

A store may credit some accounts blind (``blind_credits``): it adds to their
balance without reading it, so that many writers can credit one account at
once. Such an account's entry then leaves ``seq`` and ``balance_after`` unset,
for the store to derive when it reads the entry back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.errors import (
    AccountInDebt,
    AccountNotFound,
    DebtRepaymentTooLarge,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAccount,
    InvalidAmount,
    InvalidIdempotencyKey,
    SelfTransfer,
)
from services.ledger.model import (
    ALLOWED_TYPES,
    COUNTER_ACCOUNT,
    Account,
    Entry,
    JournalTransaction,
    Operation,
    OpKind,
    format_time,
    parse_time,
    user_account,
)
from services.ledger.usage import USAGE_KINDS, plan_usage

MAX_AMOUNT = 10**12
# Far below int64, so that no sum in SQLite or Firestore can overflow.
MAX_BALANCE = 10**15
MAX_KEY_LENGTH = 255
MAX_HOLD_S = 86_400
MAX_REASON_LENGTH = 500
# Firestore document ids may not contain '/', nor be '.', '..' or '__x__'.
_USER_ID = re.compile(r"^(?!__.*__$)(?!\.\.?$)[A-Za-z0-9_.:@+\-]{1,128}$")
# A credit's payer (a gift), a transfer's recipient, a clawback's debtor (a gift's
# payer) and a hop's buyer, whose debt the hop takes off.
WITH_COUNTERPARTY = frozenset(
    {OpKind.TRANSFER, OpKind.CREDIT, OpKind.CLAWBACK, OpKind.CLAWBACK_HOP}
)


def validate_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"amount must be a whole number of tokens, got {amount!r}")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {amount}")
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"amount must be at most {MAX_AMOUNT}, got {amount}")
    return amount


def validate_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidIdempotencyKey("an idempotency key is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"idempotency key is longer than {MAX_KEY_LENGTH} characters")
    if not key.isprintable():
        raise InvalidIdempotencyKey("idempotency key contains control characters")
    return key


def validate_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise InvalidAccount(f"not a valid account id: {user_id!r}")
    return user_id


def validate(op: Operation) -> Operation:
    """Check the shape of an operation; raises a DomainError naming the problem."""
    validate_key(op.key)
    if op.kind is OpKind.USAGE_CLOSE:
        if op.amount != 0:
            raise InvalidAmount("closing a usage session moves no tokens itself; amount must be 0")
    else:
        validate_amount(op.amount)
    for user_id in op.user_ids:
        validate_user_id(user_id)
    if op.type not in ALLOWED_TYPES[op.kind]:
        raise InvalidAmount(f"a {op.kind} cannot be recorded as {op.type}")
    if op.kind in (OpKind.TRANSFER, OpKind.CLAWBACK_HOP) and op.counterparty_id is None:
        raise InvalidAccount(f"a {op.kind} needs a counterparty")
    if op.counterparty_id is not None and op.kind not in WITH_COUNTERPARTY:
        raise InvalidAccount(f"a {op.kind} has no counterparty")
    if op.counterparty_id == op.user_id:
        raise SelfTransfer("cannot transfer tokens to the same account")
    if len(op.reason) > MAX_REASON_LENGTH:
        raise InvalidAmount(f"reason is longer than {MAX_REASON_LENGTH} characters")
    return op


def _require(accounts: Mapping[str, Account], user_id: str) -> Account:
    account = accounts.get(user_id)
    if account is None:
        raise AccountNotFound(f"no token account for user {user_id}")
    return account


def _check_spendable(account: Account, amount: int, now: str) -> None:
    if account.debt > 0:
        raise AccountInDebt(f"account owes {account.debt} tokens of debt and cannot spend or send")
    available = account.available(now)
    if available < amount:
        held = account.held(now)
        on_hold = f" ({held} of {account.balance} on hold)" if held else ""
        raise InsufficientBalance(f"{available} tokens available{on_hold}, {amount} needed")


def _check_ceiling(account: Account, amount: int) -> None:
    if account.balance + amount > MAX_BALANCE:
        raise InvalidAmount(f"balance would exceed the maximum of {MAX_BALANCE} tokens")


class _Builder:
    """Collects the entries of one transaction and the accounts they change."""

    def __init__(self, op: Operation, created_at: str, blind: frozenset[str]) -> None:
        self.op = op
        self.created_at = created_at
        self.blind = blind
        self.entries: list[Entry] = []
        self.accounts: dict[str, Account] = {}
        self.facts: dict[str, str] = {}  # what the plan found, added to the refs

    def user(
        self,
        account: Account,
        amount: int,
        debt_delta: int = 0,
        holds: Mapping[str, tuple[int, str]] | None = None,
        metered: Mapping[str, int] | None = None,
    ) -> None:
        after = Account(
            user_id=account.user_id,
            balance=account.balance + amount,
            debt=account.debt + debt_delta,
            seq=account.seq + 1,
            created_at=account.created_at,
            # Every write drops expired holds: they are released on next access.
            # Usage sessions stay until closed, so their close records what was captured.
            holds=account.kept_holds(self.created_at) if holds is None else holds,
            metered=account.metered if metered is None else metered,
        )
        other = [u for u in self.op.user_ids if u != account.user_id]
        self.accounts[account.user_id] = after
        known = account.user_id not in self.blind  # a blind balance is only partly known
        self._add(
            user_account(account.user_id),
            amount,
            user_id=account.user_id,
            seq=after.seq if known else None,
            balance_after=after.balance if known else None,
            debt_after=after.debt,
            counterparty_id=other[0] if other else None,
        )

    def system(self, amount: int) -> None:
        self._add(str(COUNTER_ACCOUNT[self.op.type]), amount)

    def _add(self, account: str, amount: int, **extra: object) -> None:
        entry = Entry(
            txn_id=self.op.transaction_id,
            index=len(self.entries),
            account=account,
            amount=amount,
            type=self.op.type,
            created_at=self.created_at,
            reason=self.op.reason,
            **extra,  # type: ignore[arg-type]
        )
        self.entries.append(entry)

    def build(self) -> tuple[JournalTransaction, list[Account]]:
        if sum(entry.amount for entry in self.entries) != 0:
            raise AssertionError("journal transaction does not balance")
        txn = JournalTransaction(
            id=self.op.transaction_id,
            key=self.op.key,
            fingerprint=self.op.fingerprint(),
            kind=self.op.kind,
            type=self.op.type,
            reason=self.op.reason,
            refs={**self.op.refs, **self.facts},
            created_at=self.created_at,
            entries=tuple(self.entries),
        )
        return txn, list(self.accounts.values())


def blind_credits(op: Operation) -> frozenset[str]:
    """The accounts ``op`` only adds to, whose balance a store need not read.

    A credit's recipient (and a gift's payer, whose entry moves nothing) and a
    transfer's recipient: no rule refuses them for their balance, except the
    ceiling, which a blind credit checks against the part of the balance read.
    """
    if op.kind is OpKind.CREDIT:
        return frozenset(op.user_ids)
    if op.kind is OpKind.TRANSFER and op.counterparty_id is not None:
        return frozenset({op.counterparty_id})
    return frozenset()


def plan(
    op: Operation,
    accounts: Mapping[str, Account],
    now: datetime,
    blind: frozenset[str] = frozenset(),
) -> tuple[JournalTransaction, list[Account]]:
    """The journal transaction ``op`` makes, or the DomainError that forbids it.

    ``blind`` names accounts whose balance and seq are only the part the store
    read; their entries leave ``seq`` and ``balance_after`` for the store to derive.
    """
    builder = _Builder(op, format_time(now), blind)
    account = _require(accounts, op.user_id)
    amount = op.amount
    if op.kind in (OpKind.HOLD, OpKind.CAPTURE, OpKind.RELEASE):
        _plan_hold(builder, account, op)
    elif op.kind in USAGE_KINDS:
        _plan_usage(builder, account, op)
    elif op.kind is OpKind.CREDIT:
        _check_ceiling(account, amount)
        builder.system(-amount)
        builder.user(account, amount)
        if op.counterparty_id is not None:
            # A gift: the payer's history shows it too, with no tokens moving there.
            builder.user(_require(accounts, op.counterparty_id), 0)
    elif op.kind is OpKind.DEBIT:
        _check_spendable(account, amount, builder.created_at)
        builder.user(account, -amount)
        builder.system(amount)
    elif op.kind is OpKind.TRANSFER:
        recipient = _require(accounts, str(op.counterparty_id))
        _check_spendable(account, amount, builder.created_at)
        _check_ceiling(recipient, amount)
        builder.user(account, -amount)
        builder.user(recipient, amount)
    elif op.kind is OpKind.CLAWBACK:
        _plan_clawback(builder, accounts, account, op)
    elif op.kind is OpKind.CLAWBACK_HOP:
        _plan_hop(builder, account, _require(accounts, str(op.counterparty_id)), op)
    elif op.kind is OpKind.REPAY_DEBT:
        if amount > account.debt:
            raise DebtRepaymentTooLarge(
                f"repayment of {amount} exceeds the debt of {account.debt} tokens"
            )
        if account.balance < amount:
            raise InsufficientBalance(f"balance is {account.balance} tokens, {amount} needed")
        builder.user(account, -amount, debt_delta=-amount)
        builder.system(amount)
    return builder.build()


def _plan_clawback(
    builder: _Builder, accounts: Mapping[str, Account], account: Account, op: Operation
) -> None:
    """Take what is there; the shortfall becomes debt, never a negative balance.

    The debt is the counterparty's when there is one (a gift's payer, who bought
    what the recipient was given), else the account's own. ``shortfall`` in the
    refs is that debt, for a chain of hops to follow (``CLAWBACK_HOP``).
    """
    taken = min(account.balance, op.amount)
    shortfall = op.amount - taken
    if op.counterparty_id is None:
        builder.user(account, -taken, debt_delta=shortfall)
    else:
        builder.user(account, -taken)
        builder.user(_require(accounts, op.counterparty_id), 0, debt_delta=shortfall)
    builder.system(taken)
    if shortfall:
        builder.facts["shortfall"] = str(shortfall)


def _plan_hop(builder: _Builder, holder: Account, buyer: Account, op: Operation) -> None:
    """Up to ``amount`` from ``holder``, as far as it holds them and the buyer still owes:
    no balance goes negative, no debt is created, and the buyer's debt falls by what
    is taken."""
    taken = min(holder.balance, op.amount, buyer.debt)
    builder.user(holder, -taken)
    builder.user(buyer, 0, debt_delta=-taken)
    builder.system(taken)
    builder.facts["taken"] = str(taken)


def _plan_hold(builder: _Builder, account: Account, op: Operation) -> None:
    """Holds reserve tokens on the account; only a capture moves any."""
    now = builder.created_at
    active = account.active_holds(now)
    kept = account.kept_holds(now)  # with usage sessions, which stay until closed
    if op.kind is OpKind.HOLD:
        ttl = op.refs.get("ttl_s", "")
        if not ttl.isdigit() or not 0 < int(ttl) <= MAX_HOLD_S:
            raise InvalidAmount(f"a hold lasts 1 to {MAX_HOLD_S} seconds, got {ttl!r}")
        expires = format_time(parse_time(now) + timedelta(seconds=int(ttl)))
        _check_spendable(account, op.amount, now)
        builder.user(account, 0, holds={**kept, op.transaction_id: (op.amount, expires)})
        return
    hold_id = op.refs.get("hold_id", "")
    hold = active.get(hold_id) if op.kind is OpKind.CAPTURE else account.holds.get(hold_id)
    if hold_id in account.metered:
        hold = None  # a usage session is charged and closed through its own operations
    if hold is None:
        raise HoldNotFound(f"no open hold {hold_id!r}: it expired, or was captured or released")
    rest = {k: v for k, v in kept.items() if k != hold_id}
    if op.kind is OpKind.RELEASE:
        builder.user(account, 0, holds=rest)
        return
    if op.amount > hold[0]:
        raise InvalidAmount(f"cannot capture {op.amount}: the hold is for {hold[0]} tokens")
    if op.amount > account.balance:
        raise InsufficientBalance(f"balance is {account.balance} tokens, {op.amount} needed")
    builder.user(account, -op.amount, holds=rest)
    builder.system(op.amount)


def _plan_usage(builder: _Builder, account: Account, op: Operation) -> None:
    step = plan_usage(op, account, builder.created_at, _check_spendable)
    builder.user(account, -step.spent, holds=step.holds, metered=step.metered)
    if step.spent:
        builder.system(step.spent)
    builder.facts.update(step.facts)


def replay(existing: JournalTransaction, op: Operation) -> JournalTransaction:
    """Same key and same request: the first result. Same key, other request: conflict."""
    if existing.fingerprint != op.fingerprint():
        raise IdempotencyConflict(
            f"idempotency key {op.key!r} was already used for a different request"
        )
    return existing


@dataclass(frozen=True)
class LedgerRead:
    """What a unit of work read for one operation."""

    existing: JournalTransaction | None  # stored under the operation's key, if any
    accounts: dict[str, Account]  # the operation's accounts that exist
    blind: frozenset[str] = frozenset()  # of those, the ones read without their balance


class UnitOfWork(Protocol):
    """What an adapter offers inside one atomic store transaction."""

    def read(self, op: Operation) -> LedgerRead:
        """The transaction stored under ``op``'s key (if any) and its accounts that exist.

        An adapter may read any of ``blind_credits(op)`` without its balance.
        """

    def write(self, txn: JournalTransaction, accounts: list[Account]) -> None: ...


def execute(uow: UnitOfWork, op: Operation, now: datetime) -> JournalTransaction:
    """Reads first, then writes: the order Firestore transactions require.

    One read fetches the idempotency record and the accounts together, which
    saves a round trip on Firestore.
    """
    found = uow.read(op)
    if found.existing is not None:
        return replay(found.existing, op)
    txn, changed = plan(op, found.accounts, now, found.blind)
    uow.write(txn, changed)
    return txn
