"""What an admin can do from the dashboard, each leaving one audit record naming them.

Every action carries the form's idempotency key. The audit record's id
derives from it, so a repeated submit finds the first record and does
nothing more; the action itself is idempotent too (ledger keys, the
provider's idempotency key), so a crash between the action and its audit
record is repaired by submitting again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.currencies import format_minor
from services.errors import AlertNotFound, DomainError, IdempotencyConflict, PurchaseNotFound
from services.ledger.model import TxnType, format_time, utc_now
from services.ledger.rules import MAX_REASON_LENGTH
from services.operations.model import AdminAction, AuditRecord, audit_id_for
from services.payments.fulfilment import UNIDENTIFIED, Fulfilment, approvable
from services.payments.model import Purchase, PurchaseState, SecurityAlert, User
from services.payments.port import PaymentsGateway
from services.payments.refunds import RefundService
from services.store.port import Store
from services.tokens import TokenLedger
from services.transfers import MAX_CLIENT_KEY

MAX_BULK_ALERTS = 200  # one dashboard page lists 50; room for a longer list later
# (message shown to the admin, details kept in the audit record)
Outcome = tuple[str, dict[str, Any]]


class ActionRefused(DomainError):
    code = "action_refused"
    http_status = 409


@dataclass(frozen=True)
class ActionRequest:
    """What every admin form sends besides its own fields."""

    key: str  # made when the form was rendered
    reason: str = ""
    # False when the caller sent no key and one was made up: a repeat is then
    # not recognised by the key, so a refund falls back to the provider key
    # made of the purchase's refund state.
    keyed: bool = True

    def checked(self, reason_required: bool = False) -> ActionRequest:
        key, reason = self.key.strip(), self.reason.strip()
        if not key or len(key) > MAX_CLIENT_KEY or not key.isprintable():
            raise DomainError("the form has no valid idempotency key; reload the page")
        if reason_required and not reason:
            raise DomainError("a reason is required: the user sees it in their history")
        if len(reason) > MAX_REASON_LENGTH:
            raise DomainError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
        return ActionRequest(key, reason, self.keyed)


@dataclass(frozen=True)
class ActionResult:
    message: str
    audit: AuditRecord
    replayed: bool  # the same form was submitted before; nothing more was done


def describe_user(user: User) -> str:
    return f"@{user.username}" if user.username else user.id


class AdminActions:
    def __init__(
        self,
        store: Store,
        ledger: TokenLedger,
        fulfilment: Fulfilment,
        payments: PaymentsGateway,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.fulfilment = fulfilment
        self.payments = payments
        self.clock = clock
        self.refunds = RefundService(store, payments)  # built once, with the actions

    # -- the one path every action takes -------------------------------------------

    def _once(
        self,
        admin: User,
        action: AdminAction,
        target: str,
        request: ActionRequest,
        act: Callable[[str], Outcome],
    ) -> ActionResult:
        """Run ``act`` (given the audit id, to key its own effects) unless this form ran."""
        audit_id = audit_id_for(admin.id, action, request.key)
        known = self.store.get_audit(audit_id)
        if known is not None and known.target != target:
            raise IdempotencyConflict(f"this key was used for {known.target}; use a new key")
        if known is not None:
            return ActionResult(str(known.details.get("message", "")), known, replayed=True)
        message, details = act(audit_id)
        record = AuditRecord(
            id=audit_id,
            admin_id=admin.id,
            action=str(action),
            target=target,
            reason=request.reason,
            created_at=format_time(self.clock()),
            details={**details, "message": message},
        )
        stored = self.store.add_audit(record)
        return ActionResult(message, stored, replayed=stored != record)

    def _purchase(self, purchase_id: str) -> Purchase:
        purchase = self.store.get_purchase(purchase_id)
        if purchase is None:
            raise PurchaseNotFound(f"no purchase {purchase_id}")
        return purchase

    # -- purchases in review -----------------------------------------------------------

    def approve(self, admin: User, purchase_id: str, request: ActionRequest) -> ActionResult:
        """Credit a purchase held in review, once, and mark it paid."""
        checked = request.checked()
        purchase = self._purchase(purchase_id)

        def act(_: str) -> Outcome:
            paid = self._credit_reviewed(admin, purchase)
            message = (
                f"Approved purchase {purchase.id}: {purchase.tokens} tokens credited"
                f" to {purchase.user_id}."
            )
            return message, {"tokens": purchase.tokens, "transaction_id": paid.credit_txn_id}

        return self._once(admin, AdminAction.APPROVE, f"purchase:{purchase.id}", checked, act)

    def _credit_reviewed(self, admin: User, purchase: Purchase) -> Purchase:
        if purchase.state is PurchaseState.PAID:
            raise ActionRefused(f"purchase {purchase.id} is paid and credited already")
        if purchase.state is not PurchaseState.NEEDS_REVIEW:
            raise ActionRefused(f"purchase {purchase.id} is {purchase.state}, not in review")
        if not approvable(purchase):
            raise ActionRefused(
                f"purchase {purchase.id} was refunded or disputed, so it cannot be credited"
            )
        if purchase.user_id == UNIDENTIFIED or purchase.tokens <= 0:
            raise ActionRefused(
                f"purchase {purchase.id} names no user or no known pack; refund it instead"
            )
        paid = self.fulfilment.credit(purchase, purchase.payment_intent_id, approved_by=admin.id)
        if paid.state is not PurchaseState.PAID or paid.credit_txn_id is None:
            raise ActionRefused(f"purchase {purchase.id} changed meanwhile; reload and look again")
        approver = self.ledger.transaction(paid.credit_txn_id).refs.get("approved_by")
        if approver != admin.id:  # another admin's approval won the race
            raise ActionRefused(f"purchase {purchase.id} was approved meanwhile by {approver}")
        return paid

    def refund(
        self,
        admin: User,
        purchase_id: str,
        request: ActionRequest,
        amount: int | None = None,
        force: bool = False,
    ) -> ActionResult:
        """Refund through the provider; its refund event then takes the tokens back."""
        checked = request.checked()
        refunds = self.refunds

        def act(audit_id: str) -> Outcome:
            plan = refunds.plan(purchase_id, amount, force)
            refund = refunds.refund(plan, key=audit_id if checked.keyed else None)
            currency = plan.purchase.currency
            money = f"{format_minor(plan.amount, currency)} {currency.upper()}"
            message = (
                f"Refund of {money} requested for purchase {purchase_id}; the tokens are taken"
                " back when the provider confirms it."
            )
            return message, {
                "amount": plan.amount,
                "currency": plan.purchase.currency,
                "refund_id": refund.get("id"),
                "max_covered": plan.max_amount,
                "unspent_tokens": plan.unspent_tokens,
                "forced": force,
            }

        return self._once(admin, AdminAction.REFUND, f"purchase:{purchase_id}", checked, act)

    # -- alerts ------------------------------------------------------------------------

    def acknowledge(self, admin: User, alert_id: str, request: ActionRequest) -> ActionResult:
        checked = request.checked()

        def act(_: str) -> Outcome:
            alert = self.store.acknowledge_alert(alert_id, admin.id, self.clock())
            if alert.acknowledged_by != admin.id:
                message = f"Alert {alert_id} was acknowledged already by {alert.acknowledged_by}."
            else:
                message = f"Acknowledged alert {alert_id} ({alert.type})."
            return message, {"type": alert.type, "acknowledged_by": alert.acknowledged_by}

        return self._once(admin, AdminAction.ACKNOWLEDGE, f"alert:{alert_id}", checked, act)

    def acknowledge_many(
        self, admin: User, alert_ids: list[str], request: ActionRequest
    ) -> ActionResult:
        """Acknowledge several alerts with one form and one audit record.

        Each acknowledgement is idempotent (the first stays), so a form submitted
        again after a crash part-way finishes the rest."""
        checked = request.checked()
        wanted = sorted(set(alert_ids))
        if not wanted or len(wanted) > MAX_BULK_ALERTS:
            raise DomainError(f"choose from 1 to {MAX_BULK_ALERTS} alerts to acknowledge")
        digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:32]

        def act(_: str) -> Outcome:
            found = [a for a in (self._acknowledged(i, admin) for i in wanted) if a is not None]
            mine = sum(alert.acknowledged_by == admin.id for alert in found)
            message = (
                f"Acknowledged {mine} alerts; {len(found) - mine} were acknowledged already"
                f" and {len(wanted) - len(found)} do not exist."
            )
            return message, {"alert_ids": wanted, "acknowledged": mine}

        target = f"alerts:{digest}"
        return self._once(admin, AdminAction.ACKNOWLEDGE_MANY, target, checked, act)

    def _acknowledged(self, alert_id: str, admin: User) -> SecurityAlert | None:
        try:
            return self.store.acknowledge_alert(alert_id, admin.id, self.clock())
        except AlertNotFound:  # a stale page's id: the others still count
            return None

    # -- tokens ----------------------------------------------------------------------

    def adjust(self, admin: User, user: User, amount: int, request: ActionRequest) -> ActionResult:
        """A positive amount grants tokens; a negative one takes them back (an adjustment)."""
        checked = request.checked(reason_required=True)
        if amount == 0:
            raise DomainError("the amount must be a whole number of tokens other than 0")
        action = AdminAction.GRANT if amount > 0 else AdminAction.ADJUST

        def act(audit_id: str) -> Outcome:
            refs = {"admin_id": admin.id, "audit_id": audit_id}
            if amount > 0:
                txn = self.ledger.credit(
                    user.id,
                    amount,
                    key=f"grant:{user.id}:{checked.key}",
                    type=TxnType.GRANT,
                    reason=checked.reason,
                    refs=refs,
                )
                self.ledger.settle_debt(user.id, txn.id)
                verb = f"Granted {amount} tokens to"
            else:
                txn = self.ledger.debit(
                    user.id,
                    -amount,
                    key=f"adjust:{user.id}:{checked.key}",
                    type=TxnType.ADJUSTMENT,
                    reason=checked.reason,
                    refs=refs,
                )
                verb = f"Took {-amount} tokens from"
            balance = self.ledger.balance(user.id).balance
            message = f"{verb} {describe_user(user)}; the balance is now {balance}."
            return message, {"amount": amount, "transaction_id": txn.id, "balance_after": balance}

        return self._once(admin, action, f"user:{user.id}", checked, act)
