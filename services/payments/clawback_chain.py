"""Clawbacks follow the tokens: what the buyer no longer holds is taken from whom they sent it.

A clawback that left a shortfall on the buyer (``refs["shortfall"]``, the debt
it recorded) is followed through the buyer's sent transfers made since the
purchase's credit, within ``window_s`` before the clawback and not after it,
most recent first. Each transfer is one hop: one ``CLAWBACK_HOP`` operation
that takes up to ``min(transfer, still owed)`` from its recipient, as far as
the recipient holds them (``rules._plan_hop``), and takes as much off the
buyer's debt. What a recipient no longer holds is followed into the transfers
it sent after receiving the tokens, up to ``MAX_DEPTH`` accounts away from the
buyer. Only what no hop finds stays the buyer's debt.

A service-level chain of ledger operations, rather than one operation over
every account, because each hop reads and writes two accounts only, and is
crash-safe on its own: every hop is one atomic, idempotent operation keyed on
the clawback's transaction and the transfer it follows
(``hop:<clawback txn id>:<transfer txn id>``). A retry (a redelivered event,
or the purchase's next event after a crash part-way through) walks the same
transfers in the same order (the walk ends at the clawback's own time, so
later transfers never join it), reads each hop's key first and, where the hop
was made, uses what it took rather than making it again, then continues with
the rest. The purchase lists the clawbacks whose chains are unfinished
(``Purchase.followed``, written with the clawback itself) and drops each once
walked to its end. Conservation and non-negativity hold after every hop: tokens go from
the recipient to the clawback system account, and the buyer's debt never
falls below zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.settings import DEFAULT_CLAWBACK_WINDOW_S
from services.errors import DomainError, IdempotencyConflict
from services.ledger.model import (
    Entry,
    JournalTransaction,
    Operation,
    OpKind,
    TxnType,
    format_time,
    parse_time,
    transaction_id_for,
)
from services.ledger.rules import validate
from services.store.port import LedgerStore

DEFAULT_WINDOW_S = DEFAULT_CLAWBACK_WINDOW_S
MAX_DEPTH = 3  # the buyer's recipients, theirs, and theirs
PAGE = 100


@dataclass(frozen=True)
class Hop:
    """One hop of a chain: ``taken`` tokens from ``user_id``, following ``transfer_id``."""

    user_id: str
    taken: int
    transfer_id: str


@dataclass(frozen=True)
class _Walk:
    clawback: JournalTransaction
    buyer: str
    purchase_id: str
    until: str  # the clawback's time: later transfers are not followed
    seen: set[str]  # transfers followed already, so that none is followed twice


def describe(hops: list[Hop]) -> str:
    """The chain for an alert: who, how much."""
    return ", ".join(f"{hop.user_id}: {hop.taken}" for hop in hops if hop.taken)


class ClawbackChain:
    def __init__(
        self,
        store: LedgerStore,
        clock: Callable[[], datetime],
        window_s: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.window_s = window_s

    def follow(self, clawback_id: str, buyer: str, credited_at: str) -> list[Hop]:
        """The hops of the clawback ``clawback_id`` (made now, or found made before)."""
        clawback = self.store.get_transaction(clawback_id)
        owed = int(clawback.refs.get("shortfall", "0")) if clawback else 0
        if clawback is None or owed <= 0:
            return []
        start = parse_time(clawback.created_at) - timedelta(seconds=self.window_s)
        since = max(credited_at, format_time(start))
        purchase_id = clawback.refs.get("purchase_id", "")
        walk = _Walk(clawback, buyer, purchase_id, clawback.created_at, set())
        hops: list[Hop] = []
        self._follow(walk, buyer, since, owed, 1, hops)
        return hops

    def _follow(
        self, walk: _Walk, holder: str, since: str, owed: int, depth: int, hops: list[Hop]
    ) -> int:
        """Take up to ``owed`` from the recipients of ``holder``'s transfers since ``since``;
        returns what was taken."""
        total = 0
        for sent in self._sent(holder, since, walk.until):
            if total >= owed:
                break
            recipient = str(sent.counterparty_id)
            if sent.txn_id in walk.seen or recipient == walk.buyer:
                continue
            walk.seen.add(sent.txn_id)
            want = min(-sent.amount, owed - total)
            taken = self._hop(walk, recipient, sent.txn_id, want)
            hops.append(Hop(recipient, taken, sent.txn_id))
            if taken < want and depth < MAX_DEPTH:  # what it no longer holds, onwards
                rest = want - taken
                taken += self._follow(walk, recipient, sent.created_at, rest, depth + 1, hops)
            total += taken
        return total

    def _sent(self, user_id: str, since: str, until: str) -> Iterator[Entry]:
        """``user_id``'s sent transfers in [since, until], newest first."""
        before: int | None = None
        while True:
            page = self.store.list_entries(user_id, PAGE, before, str(TxnType.TRANSFER))
            for entry in page:
                if entry.created_at < since:
                    return
                if entry.amount < 0 and entry.created_at <= until:
                    yield entry
            if len(page) < PAGE or page[-1].seq is None:
                return
            before = page[-1].seq

    def _hop(self, walk: _Walk, holder: str, transfer_id: str, want: int) -> int:
        """One hop, or the one already made under its key: what it took."""
        key = f"hop:{walk.clawback.id}:{transfer_id}"
        made = self.store.get_transaction(transaction_id_for(key))
        if made is None and self._worth_a_hop(holder, walk.buyer):
            made = self._apply_hop(walk, key, holder, transfer_id, want)
        return int(made.refs.get("taken", "0")) if made else 0

    def _worth_a_hop(self, holder: str, buyer: str) -> bool:
        """The holder holds something and the buyer still owes: else no entry is written
        (the hop's own transaction checks again)."""
        accounts = self.store.get_accounts([holder, buyer])
        if holder not in accounts or buyer not in accounts:
            return False
        return min(accounts[holder].balance, accounts[buyer].debt) > 0

    def _apply_hop(
        self, walk: _Walk, key: str, holder: str, transfer_id: str, want: int
    ) -> JournalTransaction | None:
        op = Operation(
            OpKind.CLAWBACK_HOP,
            key,
            holder,
            want,
            TxnType.CLAWBACK_HOP,
            reason="tokens the buyer sent before a clawback",
            counterparty_id=walk.buyer,
            refs={
                "purchase_id": walk.purchase_id,
                "clawback": walk.clawback.id,
                "transfer": transfer_id,
            },
        )
        try:
            return self.store.apply(validate(op), self.clock())
        except IdempotencyConflict:
            # A concurrent run made this hop first, with another amount: use its.
            return self.store.get_transaction(transaction_id_for(key))
        except DomainError:
            return None  # an account gone or invalid: nothing to take from it
