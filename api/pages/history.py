"""/tokens/history: the user's journal, filtered and paged, and the tip form."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from flask import Blueprint, Response, flash, redirect, render_template, request

from api.http import deps
from api.http.redirects import signin_required
from api.json_api.entries import describe
from services.errors import AccountNotFound, DomainError, SelfTransfer, TokenStoreError
from services.ledger.model import Entry, TxnType

bp = Blueprint("history", __name__)
PAGE_SIZE = 20
MAX_TIP_DIGITS = 12  # the ledger's own ceiling is 10**12 tokens
TIP_FLASH = "tip"
TYPE_LABELS: dict[TxnType, str] = {
    TxnType.PURCHASE: "Purchases",
    TxnType.GRANT: "Grants",
    TxnType.SPEND: "Spending",
    TxnType.TRANSFER: "Tips",
    TxnType.REFUND: "Refunds",
    TxnType.DISPUTE: "Disputes",
    TxnType.DISPUTE_REVERSAL: "Dispute reversals",
    TxnType.REFUND_REVERSAL: "Failed refunds",
    TxnType.DEBT_REPAYMENT: "Debt repayments",
    TxnType.CLAWBACK_HOP: "Clawbacks of tips",
    TxnType.HOLD: "Reserved",
    TxnType.HOLD_RELEASE: "Released",
    TxnType.USAGE_START: "Metered use started",
    TxnType.USAGE: "Metered use",
    TxnType.USAGE_TOP_UP: "Metered use topped up",
    TxnType.USAGE_CLOSE: "Metered use ended",
}


def type_options() -> list[tuple[str, str]]:
    """Every journal type for the filter; a type added later gets a readable default."""
    return [(str(t), TYPE_LABELS.get(t, str(t).replace("_", " ").capitalize())) for t in TxnType]


@dataclass(frozen=True)
class Row:
    entry: Entry
    description: str

    @property
    def direction(self) -> str:
        return "in" if self.entry.amount > 0 else "out" if self.entry.amount < 0 else "none"

    @property
    def signed_amount(self) -> str:
        """A sign people can see ("+" / U+2212 minus) as well as the colour."""
        amount = self.entry.amount
        return f"+{amount}" if amount > 0 else f"\u2212{-amount}" if amount < 0 else "0"


@dataclass(frozen=True)
class TipForm:
    recipient: str = ""
    amount: str = ""
    note: str = ""
    key: str = ""

    @classmethod
    def blank(cls) -> TipForm:
        return cls(key=uuid.uuid4().hex)

    @classmethod
    def posted(cls, form: Mapping[str, str]) -> TipForm:
        return cls(
            recipient=form.get("recipient", "").strip(),
            amount=form.get("amount", "").strip(),
            note=form.get("note", "").strip(),
            key=form.get("idempotency_key", "").strip() or uuid.uuid4().hex,
        )

    def tokens(self) -> int:
        """The amount as a whole number of tokens, or a DomainError a person can act on."""
        if not self.amount:
            raise DomainError("Enter how many tokens to send.")
        if not self.amount.isascii() or not self.amount.isdigit():
            raise DomainError("The amount must be a whole number of tokens, like 25.")
        if len(self.amount) > MAX_TIP_DIGITS:
            raise DomainError("That amount is more than anyone can hold.")
        if int(self.amount) < 1:
            raise DomainError("Send at least 1 token.")
        return int(self.amount)


def tip_error_text(exc: TokenStoreError, form: TipForm) -> str:
    if isinstance(exc, AccountNotFound) and form.recipient:
        return f"Nobody is called “{form.recipient}”. Check the username and try again."
    if isinstance(exc, AccountNotFound):
        return "Enter the username of the person to tip."
    if isinstance(exc, SelfTransfer):
        return "You can't tip yourself; pick another user."
    if exc.code == "insufficient_tokens":
        return f"Not enough tokens for this tip: {exc.message}."
    return exc.message


def _filter_type() -> str | None:
    """The ?type= filter; an unknown value is a 400 from the ledger with its message."""
    return request.args.get("type") or None


def render_history(tip: TipForm | None = None, tip_error: str | None = None) -> str:
    user = deps.current_user()
    txn_type = _filter_type()
    cursor = request.args.get("cursor") or None
    page = deps.ledger().history(user.id, limit=PAGE_SIZE, cursor=cursor, txn_type=txn_type)
    names = deps.services().views.counterparty_names(page.entries)
    catalog = deps.settings().catalog
    return render_template(
        "history.html",
        rows=[Row(e, describe(e, names, catalog)) for e in page.entries],
        next_cursor=page.next_cursor,
        cursor=cursor,
        txn_type=txn_type or "",
        type_options=type_options(),
        account=deps.ledger().balance(user.id),
        tip=tip or TipForm.blank(),
        tip_error=tip_error,
    )


@bp.get("/tokens/history")
@signin_required()
def history() -> str:
    return render_history()


@bp.post("/tokens/tip")
@signin_required(back="/tokens/history")
def tip() -> Response | tuple[str, int]:
    """Without JavaScript: post, then redirect back with the result (post/redirect/get).

    The form's idempotency key is made when the page renders, so posting the
    same form twice (a double click, a reload) sends one tip.
    """
    form = TipForm.posted(request.form)
    try:
        _, recipient = deps.services().transfers.transfer(
            deps.current_user(), form.recipient, form.tokens(), form.note, form.key
        )
    except TokenStoreError as exc:
        return render_history(form, tip_error=tip_error_text(exc, form)), exc.http_status
    name = f"@{recipient.username}" if recipient.username else "them"
    flash(f"Sent {form.tokens()} tokens to {name}.", TIP_FLASH)
    return cast(Response, redirect("/tokens/history", code=303))
