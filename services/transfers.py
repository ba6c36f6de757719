"""Spending and tipping on behalf of a signed-in user, keyed by the client's Idempotency-Key."""

from __future__ import annotations

from typing import Any

from services.errors import AccountNotFound, InvalidIdempotencyKey
from services.faults import AFTER_SPEND_APPLY, AFTER_TRANSFER_APPLY, fault_point
from services.ledger.model import JournalTransaction
from services.payments.model import User
from services.store.port import PurchaseStore
from services.tokens import TokenLedger
from services.users import find_user

MAX_CLIENT_KEY = 200  # every key a client or a form sends: API headers and forms alike


def client_key(kind: str, user_id: str, key: str | None) -> str:
    """The client's key, namespaced per user and operation so users cannot collide."""
    if key is None or not key.strip():
        raise InvalidIdempotencyKey("send an Idempotency-Key header with every spend or transfer")
    if len(key) > MAX_CLIENT_KEY:
        raise InvalidIdempotencyKey(f"Idempotency-Key is longer than {MAX_CLIENT_KEY} characters")
    return f"{kind}:{user_id}:{key}"


class TransferService:
    def __init__(self, ledger: TokenLedger, users: PurchaseStore) -> None:
        self.ledger = ledger
        self.users = users

    def spend(self, user: User, amount: Any, reason: object, key: str | None) -> JournalTransaction:
        """``amount`` comes straight from JSON; the ledger refuses anything but a whole number."""
        text = reason if isinstance(reason, str) else ""
        txn = self.ledger.spend(user.id, amount, key=client_key("spend", user.id, key), reason=text)
        fault_point(AFTER_SPEND_APPLY)
        return txn

    def recipient(self, name: object) -> User:
        """A user by id or by username (case-insensitive, with or without '@')."""
        if not isinstance(name, str) or not name.strip():
            raise AccountNotFound("name a recipient by username or user id")
        found = find_user(self.users, name)
        if found is None:
            raise AccountNotFound(f"no user called {name!r}")
        return found

    def transfer(
        self, sender: User, recipient: object, amount: Any, note: object, key: str | None
    ) -> tuple[JournalTransaction, User]:
        target = self.recipient(recipient)
        text = note if isinstance(note, str) else ""
        txn = self.ledger.transfer(
            sender.id, target.id, amount, key=client_key("transfer", sender.id, key), reason=text
        )
        fault_point(AFTER_TRANSFER_APPLY)
        return txn, target
