"""The payment sandbox: Stripe's part, played locally, for development and tests.

It implements the same gateway as StripeService and raises the same
PaymentsError kinds Stripe's answers map to. Checkout sessions live in their
own SQLite file (``sandbox_db``, standing for Stripe's database); paying on the
local checkout page with one of Stripe's test cards (``sandbox_rules``, with
Stripe's refusals) enqueues Stripe-shaped events (``sandbox_objects``) in the
outbox (``sandbox_outbox``), whose delivery thread signs them and POSTs them to
the app's own webhook. So development runs the production code path from the
webhook inwards.

Like Stripe, it also lists the events it generated and the payments made, and
refunds a payment through its API (idempotently, on the caller's key). With
``SANDBOX_WEBHOOKS=off`` events are recorded but never delivered, to rehearse
missed webhooks and their replay.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from config import Settings
from config.catalog import Pack
from services.payments import sandbox_after as after
from services.payments import sandbox_challenge as challenge
from services.payments import sandbox_objects as objects
from services.payments.errors import not_found, refused
from services.payments.port import CheckoutSession, PaymentIntent
from services.payments.sandbox_actions import DashboardActions
from services.payments.sandbox_db import SandboxDb
from services.payments.sandbox_outbox import Clock, Outbox, Pending
from services.payments.sandbox_rules import (
    AUTHENTICATION_FAILED,
    PaymentDeclined,
    after_payment,
    card_problem,
    needs_authentication,
    replayed_refund,
)

__all__ = ["AUTHENTICATION_FAILED", "PaymentDeclined", "SandboxPayments", "card_problem"]

Change = after.Change
RETURN_PATH = "/token-purchase-success"  # where an embedded payment's challenge returns
CANCELABLE = frozenset({"requires_payment_method", "requires_action"})


class SandboxPayments(DashboardActions):
    mode = "sandbox"

    def __init__(self, settings: Settings, clock: Clock = time.time) -> None:
        self.base_url = settings.app_base_url
        self.db = SandboxDb(settings.sandbox_db_path)
        self.outbox = Outbox(
            self.db,
            settings.app_base_url + "/api/stripe/webhook",
            settings.webhook_secrets[0],
            settings.sandbox_webhooks,
            clock,
        )
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    # -- the gateway --------------------------------------------------------------

    def get_or_create_customer(
        self, user_id: str, email: str | None, existing_id: str | None
    ) -> str:
        return existing_id or "cus_sandbox_" + objects.short_id(user_id)[:14]

    def create_checkout_session(
        self,
        *,
        purchase_id: str,
        pack: Pack,
        customer_id: str | None,
        client_reference_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        expires_at: int,
    ) -> CheckoutSession:
        session_id = objects.checkout_session_id(purchase_id)
        session = objects.checkout_session(
            session_id,
            pack,
            customer_id=customer_id,
            client_reference_id=client_reference_id,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata=metadata,
            expires_at=expires_at,
            url=f"{self.base_url}/sandbox/checkout/{session_id}",
            created=self._now(),
        )
        self._insert(purchase_id, session)
        stored = self.retrieve_session(session_id)
        return CheckoutSession(stored["id"], stored["url"], stored["payment_intent"])

    def create_payment_intent(
        self,
        *,
        purchase_id: str,
        pack: Pack,
        customer_id: str | None,
        metadata: dict[str, str],
    ) -> PaymentIntent:
        """Stored beside the sessions (one row per purchase), so refunds and disputes reuse them."""
        intent_id = objects.payment_intent_id(purchase_id)
        row = objects.intent_row(
            intent_id, pack, customer_id=customer_id, metadata=metadata, created=self._now()
        )
        self._insert(purchase_id, row)
        stored = self._intent_row(intent_id)
        return PaymentIntent(stored["id"], stored["client_secret"])

    def _insert(self, purchase_id: str, row: dict[str, Any]) -> None:
        """The first row made for a purchase stays: asking again returns it, as Stripe does."""
        with self.db.connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)",
                (row["id"], purchase_id, self._clock(), json.dumps(row)),
            )

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = _row_by_intent(conn, payment_intent_id)
        intent = objects.payment_intent(row)
        if row.get("client_secret"):  # Stripe shows it to the secret key's holder only
            intent["client_secret"] = row["client_secret"]
        return intent

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        """The session as Stripe shows it with line items expanded; no sandbox bookkeeping."""
        with self.db.connect() as conn:
            row = conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        session: dict[str, Any] = json.loads(row[0]) if row else {}
        if session.get("object") != "checkout.session":  # an embedded payment's intent is none
            raise not_found(f"No such checkout.session: {session_id}")
        return {**objects.public(session), "line_items": session["line_items"]}

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event generated (delivered or not) since ``created_gte``, newest first."""
        return self.outbox.list_events(created_gte=created_gte, types=types)

    def list_payments(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """A succeeded payment intent per paid session created since ``created_gte``."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT body FROM sessions WHERE created >= ? ORDER BY created DESC",
                (created_gte,),
            ).fetchall()
        sessions = [json.loads(row[0]) for row in rows]
        return iter([objects.payment_intent(s) for s in sessions if s["payment_status"] == "paid"])

    def list_refunds(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Every refund made since ``created_gte``, as its payment keeps it."""
        found = (r for s in self._all_sessions() for r in s.get("refunds", []))
        return iter([r for r in found if int(r.get("created") or 0) >= created_gte])

    def list_disputes(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Every dispute opened since ``created_gte``; the sandbox has one per payment at most."""
        found = (s["dispute"] for s in self._all_sessions() if s.get("dispute"))
        return iter([d for d in found if int(d.get("created") or 0) >= created_gte])

    def _all_sessions(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute("SELECT body FROM sessions").fetchall()
        return [json.loads(row[0]) for row in rows]

    def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int | None,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Refund ``amount`` (None: what is left); the same key returns the same refund."""
        request = json.dumps(
            {"payment_intent": payment_intent, "amount": amount, "metadata": metadata},
            sort_keys=True,
        )
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT request, body FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                return replayed_refund(idempotency_key, request, row[0], row[1])
            session = _row_by_intent(conn, payment_intent)
            made: list[dict[str, Any]] = []
            change = after.refund_change(amount, metadata, self._now(), made)
            self._apply(conn, session["id"], change)
            refund = made[0]
            conn.execute(
                "INSERT INTO refunds VALUES (?, ?, ?)",
                (idempotency_key, request, json.dumps(refund)),
            )
        self.outbox.kick()
        return refund

    # -- what Stripe.js and the sandbox's pages do ----------------------------------

    def confirm_payment_intent(
        self, payment_intent_id: str, card_number: str, client_secret: str
    ) -> dict[str, Any]:
        """Pay an embedded payment intent with a test card, as Stripe.js confirms one.

        A decline leaves the intent open for another card and sends
        payment_intent.payment_failed, then raises PaymentDeclined. A card that
        must authenticate leaves it in ``requires_action``, its ``next_action``
        naming the challenge page. A canceled intent refuses every card.
        """
        row = self._intent_row(payment_intent_id)
        if not hmac.compare_digest(row["client_secret"], client_secret):
            raise not_found(f"No such payment_intent: {payment_intent_id}")
        problem = card_problem(card_number)
        if problem is None and needs_authentication(card_number):
            start = challenge.start_change(self.base_url, self.base_url + RETURN_PATH)
            waiting = self._change(payment_intent_id, after.unless_canceled(start))
            return objects.payment_intent(waiting)

        def change(intent: dict[str, Any]) -> after.Outcome:
            if intent["payment_status"] == "paid":
                return None
            intent.pop("next_action", None)
            if problem is not None:
                intent["intent_status"] = "requires_payment_method"
                intent["last_payment_error"] = {"code": "card_declined", "message": problem}
                intent["declines"] = int(intent.get("declines", 0)) + 1
                return [Pending("payment_intent.payment_failed", objects.payment_intent(intent))]
            intent.update(payment_status="paid", intent_status="succeeded")
            intent.pop("last_payment_error", None)
            paid = Pending("payment_intent.succeeded", objects.payment_intent(intent))
            return [paid, *after.after_payment(intent, after_payment(card_number), self._now())]

        updated = self._change(payment_intent_id, after.unless_canceled(change))
        if problem is not None and updated["payment_status"] != "paid":
            raise PaymentDeclined(problem)
        return objects.payment_intent(updated)

    def cancel_payment_intent(self, payment_intent_id: str, reason: str) -> dict[str, Any]:
        """Cancel an intent that is not paid; Stripe refuses to cancel a succeeded one."""

        def change(intent: dict[str, Any]) -> after.Outcome:
            status = objects.payment_intent(intent)["status"]
            if status not in CANCELABLE:
                raise refused(
                    f"You cannot cancel this PaymentIntent because it has a status of {status}."
                )
            intent.pop("next_action", None)
            intent.update(
                intent_status="canceled", canceled_at=self._now(), cancellation_reason=reason
            )
            return [Pending("payment_intent.canceled", objects.payment_intent(intent))]

        self._intent_row(payment_intent_id)
        return objects.payment_intent(self._change(payment_intent_id, change))

    def authenticate(self, payment_id: str, token: str, completed: bool) -> str:
        """Complete or fail a 3D Secure challenge; where the buyer goes next ("": back)."""
        finish = challenge.finish_change(token, completed, self._now())
        row = self._change(payment_id, finish)
        if not challenge.token_matches(row, token):
            raise not_found(f"No such authentication for {payment_id}")
        return challenge.return_to(row)

    def _intent_row(self, payment_intent_id: str) -> dict[str, Any]:
        intent = self._stored(payment_intent_id)
        if intent is None or intent.get("object") != "payment_intent":
            raise not_found(f"No such payment_intent: {payment_intent_id}")
        return intent

    def _stored(self, payment_id: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute("SELECT body FROM sessions WHERE id = ?", (payment_id,)).fetchone()
        found: dict[str, Any] | None = json.loads(row[0]) if row else None
        return found

    def list_sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT body FROM sessions ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def payment(self, payment_id: str) -> dict[str, Any]:
        """A checkout session or embedded payment intent as stored, for the dashboard."""
        found = self._stored(payment_id)
        if found is None:
            raise not_found(f"No such payment: {payment_id}")
        return found

    def pay_with_card(self, session_id: str, card_number: str) -> dict[str, Any]:
        """Pay a checkout session; a card that must authenticate returns it open, in a
        challenge (its ``next_action`` names the page)."""
        problem = card_problem(card_number)
        if problem is not None:
            raise PaymentDeclined(problem)
        if needs_authentication(card_number):
            return self._change(session_id, challenge.start_change(self.base_url, None))
        return self._complete(session_id, paid=True, behaviour=after_payment(card_number))

    def pay_by_bank_debit(self, session_id: str) -> dict[str, Any]:
        """Completed now, paid (or failed) later: Stripe's delayed payment methods."""
        return self._complete(session_id, paid=False)

    def _complete(
        self, session_id: str, paid: bool, behaviour: str | None = None
    ) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> after.Outcome:
            if session["status"] != "open":
                return None
            for name in ("challenge", "next_action", "intent_status"):
                session.pop(name, None)  # another card replaced a pending challenge
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            session["payment_intent"] = objects.session_payment_intent_id(session_id)
            completed = Pending("checkout.session.completed", dict(session))
            return [completed, *after.after_payment(session, behaviour, self._now())]

        return self._change(session_id, change)

    def _change(self, session_id: str, change: Change) -> dict[str, Any]:
        """Change a session and enqueue its event in one SQLite transaction."""
        with self.db.transaction() as conn:
            session = self._apply(conn, session_id, change)
        self.outbox.kick()
        return session

    def _apply(self, conn: sqlite3.Connection, session_id: str, change: Change) -> dict[str, Any]:
        """Within the caller's transaction: change the session, enqueue its event if any."""
        row = conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise not_found(f"No such checkout.session: {session_id}")
        session: dict[str, Any] = json.loads(row[0])
        outcome = change(session)
        if outcome is not None:
            events = [Pending(outcome, session)] if isinstance(outcome, str) else outcome
            conn.execute(
                "UPDATE sessions SET body = ? WHERE id = ?", (json.dumps(session), session_id)
            )
            for pending in events:
                self.outbox.enqueue(conn, pending)
        return session

    # -- event delivery, for the pages, the CLI and tests -------------------------

    @property
    def webhooks_on(self) -> bool:
        return self.outbox.enabled

    def deliver_in_foreground(self) -> None:
        """For short-lived processes (CLI commands): deliver from the caller, not a thread.

        A background thread dies with the process, possibly holding a claim on
        an event; the app's own worker would then wait for the claim to lapse.
        """
        self.outbox.background = False

    def deliver_pending(self) -> None:
        self.outbox.deliver_pending()

    def deliver_due(self) -> bool:
        return self.outbox.deliver_due()

    def pending_deliveries(self) -> int:
        return self.outbox.pending()


def _row_by_intent(conn: sqlite3.Connection, payment_intent: str) -> dict[str, Any]:
    """The checkout session or embedded payment intent that owns ``payment_intent``."""
    row = conn.execute(
        "SELECT body FROM sessions WHERE json_extract(body, '$.payment_intent') = ?",
        (payment_intent,),
    ).fetchone()
    if row is None:
        raise not_found(f"No such payment_intent: {payment_intent!r}")
    session: dict[str, Any] = json.loads(row[0])
    return session
