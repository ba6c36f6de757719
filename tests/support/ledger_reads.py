"""Reads of the ledger that only tests need: system totals and a transaction by its key."""

from __future__ import annotations

from services.errors import TransactionNotFound
from services.ledger.model import JournalTransaction, SystemAccount, transaction_id_for
from services.ledger.rules import validate_key
from services.tokens import TokenLedger


def system_balances(ledger: TokenLedger) -> dict[SystemAccount, int]:
    return {account: ledger.store.system_balance(account) for account in SystemAccount}


def transaction_by_key(ledger: TokenLedger, key: str) -> JournalTransaction:
    txn = ledger.store.get_transaction(transaction_id_for(validate_key(key)))
    if txn is None or txn.key != key:
        raise TransactionNotFound("no journal transaction has that idempotency key")
    return txn
