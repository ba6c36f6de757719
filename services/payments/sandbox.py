"""The payment sandbox: Stripe's part, played locally, for development and tests.

It implements the same gateway as StripeService. Checkout sessions live in
their own SQLite file (standing for Stripe's database); paying on the local
checkout page with one of Stripe's test cards enqueues Stripe-shaped events,
which a delivery thread signs with the webhook secret and POSTs to the app's
own webhook, retrying with backoff until it answers 2xx. So development runs
the production code path from the webhook inwards.

Like Stripe, it also lists the events it generated and the payments made, and
refunds a payment through its API (idempotently, on the caller's key). With
``SANDBOX_WEBHOOKS=off`` events are recorded but never delivered, to rehearse
missed webhooks and their replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from config import Settings
from config.catalog import Pack
from services.payments import signature
from services.payments.port import CheckoutSession, PaymentIntent, PaymentsError

log = logging.getLogger("token_store.sandbox")
API_VERSION = "2026-10-28.endive"
SUCCESS_CARDS = frozenset({"4242424242424242", "5555555555554444", "4000056655665556"})
DECLINE_CARDS = {
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000000069": "Your card has expired.",
}
MAX_ATTEMPTS = 8
BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 32, 60)
CLAIM_S = 30
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, purchase_id TEXT UNIQUE, created REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL, claimed_until REAL NOT NULL DEFAULT 0, delivered REAL,
    last_status TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered, due);
CREATE TABLE IF NOT EXISTS refunds (
    idempotency_key TEXT PRIMARY KEY, request TEXT NOT NULL, body TEXT NOT NULL
);
"""
# What a session change returns: no event, an event about the session, or (type, object).
Change = Callable[[dict[str, Any]], str | tuple[str, dict[str, Any]] | None]


class PaymentRefused(PaymentsError):
    """The sandbox refuses the request itself, as Stripe answers 4xx: retrying will not help."""

    transient = False


class PaymentDeclined(Exception):
    """A test card that declines; the session (or payment intent) stays open for another try."""


def card_problem(card_number: str) -> str | None:
    """Why a test card is declined, or None when it pays."""
    digits = "".join(ch for ch in card_number if ch.isdigit())
    if digits in DECLINE_CARDS:
        return DECLINE_CARDS[digits]
    if digits not in SUCCESS_CARDS:
        return "Use a Stripe test card, for example 4242 4242 4242 4242."
    return None


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class SandboxPayments:
    mode = "sandbox"

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.app_base_url
        self.webhook_url = settings.app_base_url + "/api/stripe/webhook"
        self.secret = settings.webhook_secrets[0]
        self.path = settings.sandbox_db_path
        self.webhooks_on = settings.sandbox_webhooks
        self.background = True
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._db() as conn:
            conn.executescript(SCHEMA)
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- the gateway --------------------------------------------------------------

    def get_or_create_customer(
        self, user_id: str, email: str | None, existing_id: str | None
    ) -> str:
        return existing_id or "cus_sandbox_" + _short(user_id)[:14]

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
        session_id = "cs_test_sandbox_" + _short(purchase_id)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": pack.price_cents,
            "amount_total": pack.price_cents,
            "currency": pack.currency,
            "client_reference_id": client_reference_id,
            "customer": customer_id,
            "metadata": dict(metadata),
            "payment_intent": None,
            "payment_method_types": ["card"],
            "success_url": success_url.replace("{CHECKOUT_SESSION_ID}", session_id),
            "cancel_url": cancel_url,
            "url": f"{self.base_url}/sandbox/checkout/{session_id}",
            "created": int(time.time()),
            "expires_at": expires_at,
            "livemode": False,
            "line_items": _line_items(pack),
        }
        with self._db() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)",
                (session_id, purchase_id, time.time(), json.dumps(session)),
            )
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
        intent_id = "pi_sandbox_" + _short("intent:" + purchase_id)
        row = {
            "id": intent_id,
            "object": "payment_intent",
            "intent_status": "requires_payment_method",
            "payment_status": "unpaid",
            "amount_total": pack.price_cents,
            "currency": pack.currency,
            "customer": customer_id,
            "metadata": dict(metadata),
            "payment_intent": intent_id,
            "payment_method_types": ["card"],
            "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "livemode": False,
        }
        with self._db() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)",
                (intent_id, purchase_id, time.time(), json.dumps(row)),
            )
        stored = self._intent_row(intent_id)
        return PaymentIntent(stored["id"], stored["client_secret"])

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        with self._db() as conn:
            row = _row_by_intent(conn, payment_intent_id)
        intent = _payment_intent(row)
        if row.get("client_secret"):  # Stripe shows it to the secret key's holder only
            intent["client_secret"] = row["client_secret"]
        return intent

    def confirm_payment_intent(
        self, payment_intent_id: str, card_number: str, client_secret: str
    ) -> dict[str, Any]:
        """Pay an embedded payment intent with a test card, as Stripe.js confirms one.

        A decline leaves the intent open for another card and sends
        payment_intent.payment_failed, then raises PaymentDeclined.
        """
        row = self._intent_row(payment_intent_id)
        if not hmac.compare_digest(row["client_secret"], client_secret):
            raise PaymentsError(f"No such payment_intent: {payment_intent_id}")
        problem = card_problem(card_number)

        def change(intent: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
            if intent["payment_status"] == "paid":
                return None
            if problem is not None:
                intent["last_payment_error"] = {"code": "card_declined", "message": problem}
                return "payment_intent.payment_failed", _payment_intent(intent)
            intent.update(payment_status="paid", intent_status="succeeded")
            intent.pop("last_payment_error", None)
            return "payment_intent.succeeded", _payment_intent(intent)

        updated = self._change(payment_intent_id, change)
        if problem is not None and updated["payment_status"] != "paid":
            raise PaymentDeclined(problem)
        return _payment_intent(updated)

    def _intent_row(self, payment_intent_id: str) -> dict[str, Any]:
        with self._db() as conn:
            row = conn.execute(
                "SELECT body FROM sessions WHERE id = ?", (payment_intent_id,)
            ).fetchone()
        intent: dict[str, Any] | None = json.loads(row[0]) if row else None
        if intent is None or intent.get("object") != "payment_intent":
            raise PaymentsError(f"No such payment_intent: {payment_intent_id}")
        return intent

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        with self._db() as conn:
            row = conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise PaymentsError(f"No such checkout.session: {session_id}")
        session: dict[str, Any] = json.loads(row[0])
        return session

    def list_events(
        self, *, created_gte: int, types: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event generated (delivered or not) since ``created_gte``, newest first."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT payload FROM outbox WHERE json_extract(payload, '$.created') >= ?"
                " ORDER BY json_extract(payload, '$.created') DESC, rowid DESC",
                (created_gte,),
            ).fetchall()
        events = [json.loads(row[0]) for row in rows]
        return iter([e for e in events if not types or e["type"] in types])

    def list_payments(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """A succeeded payment intent per paid session created since ``created_gte``."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT body FROM sessions WHERE created >= ? ORDER BY created DESC",
                (created_gte,),
            ).fetchall()
        sessions = [json.loads(row[0]) for row in rows]
        return iter([_payment_intent(s) for s in sessions if s["payment_status"] == "paid"])

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
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT request, body FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                return _replayed_refund(idempotency_key, request, row[0], row[1])
            session = _row_by_intent(conn, payment_intent)
            refund = _refund_object(session, _refundable(session, amount), metadata)
            self._apply(conn, session["id"], _refund_change(refund["amount"]))
            conn.execute(
                "INSERT INTO refunds VALUES (?, ?, ?)",
                (idempotency_key, request, json.dumps(refund)),
            )
        self._kick()
        return refund

    # -- what the sandbox's pages do ---------------------------------------------------

    def list_sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db() as conn:
            rows = conn.execute(
                "SELECT body FROM sessions ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def payment(self, payment_id: str) -> dict[str, Any]:
        """A checkout session or embedded payment intent as stored, for the dashboard."""
        with self._db() as conn:
            row = conn.execute("SELECT body FROM sessions WHERE id = ?", (payment_id,)).fetchone()
        if row is None:
            raise PaymentRefused(f"No such payment: {payment_id}")
        found: dict[str, Any] = json.loads(row[0])
        return found

    def pay_with_card(self, session_id: str, card_number: str) -> dict[str, Any]:
        problem = card_problem(card_number)
        if problem is not None:
            raise PaymentDeclined(problem)
        return self._complete(session_id, paid=True)

    def pay_by_bank_debit(self, session_id: str) -> dict[str, Any]:
        """Completed now, paid (or failed) later: Stripe's delayed payment methods."""
        return self._complete(session_id, paid=False)

    def settle_bank_debit(self, session_id: str, succeeded: bool) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> str | None:
            if session["status"] != "complete" or session["payment_status"] != "unpaid":
                return None
            if session.get("debit_failed"):  # settled already: it failed
                return None
            if succeeded:
                session["payment_status"] = "paid"
                return "checkout.session.async_payment_succeeded"
            session["debit_failed"] = True
            return "checkout.session.async_payment_failed"

        return self._change(session_id, change)

    def expire(self, session_id: str) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> str | None:
            if session["status"] != "open":
                return None
            session["status"] = "expired"
            return "checkout.session.expired"

        return self._change(session_id, change)

    def refund(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund a paid session (all, or ``amount`` more); Stripe sends charge.refunded."""
        return self._change(session_id, _refund_change(amount))

    def dispute(self, session_id: str) -> dict[str, Any]:
        """The card holder disputes the whole payment; Stripe sends charge.dispute.created."""

        def change(session: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
            if session["payment_status"] != "paid" or session.get("disputed"):
                return None
            session["disputed"] = True
            charge = _charge(session)
            return "charge.dispute.created", {
                "id": "dp_sandbox_" + _short(session_id),
                "object": "dispute",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "charge": charge["id"],
                "payment_intent": session["payment_intent"],
                "status": "needs_response",
                "reason": "fraudulent",
            }

        return self._change(session_id, change)

    def _complete(self, session_id: str, paid: bool) -> dict[str, Any]:
        def change(session: dict[str, Any]) -> str | None:
            if session["status"] != "open":
                return None
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            session["payment_intent"] = "pi_sandbox_" + _short(session_id)
            return "checkout.session.completed"

        return self._change(session_id, change)

    def _change(self, session_id: str, change: Change) -> dict[str, Any]:
        """Change a session and enqueue its event in one SQLite transaction."""
        with self._transaction() as conn:
            session = self._apply(conn, session_id, change)
        self._kick()
        return session

    def _apply(self, conn: sqlite3.Connection, session_id: str, change: Change) -> dict[str, Any]:
        """Within the caller's transaction: change the session, enqueue its event if any."""
        row = conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise PaymentsError(f"No such checkout.session: {session_id}")
        session: dict[str, Any] = json.loads(row[0])
        outcome = change(session)
        if outcome is not None:
            event_type, obj = outcome if isinstance(outcome, tuple) else (outcome, session)
            conn.execute(
                "UPDATE sessions SET body = ? WHERE id = ?", (json.dumps(session), session_id)
            )
            self._enqueue(conn, event_type, obj)
        return session

    # -- event delivery ------------------------------------------------------------

    def _enqueue(self, conn: sqlite3.Connection, event_type: str, obj: dict[str, Any]) -> None:
        event_id = "evt_sandbox_" + uuid.uuid4().hex[:24]
        event = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        conn.execute(
            "INSERT INTO outbox (event_id, payload, due) VALUES (?, ?, ?)",
            (event_id, json.dumps(event), time.time()),
        )

    def deliver_in_foreground(self) -> None:
        """For short-lived processes (CLI commands): deliver from the caller, not a thread.

        A background thread dies with the process, possibly holding a claim on
        an event; the app's own worker would then wait for the claim to lapse.
        """
        self.background = False

    def deliver_pending(self) -> None:
        """Deliver every event that is due now, in this thread (one attempt each)."""
        while self.deliver_due():
            pass

    def _kick(self) -> None:
        if not self.webhooks_on or not self.background:
            return
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._deliver_forever, name="sandbox-webhooks", daemon=True
                )
                self._worker.start()
        self._wake.set()

    def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            if not self.deliver_due():
                self._wake.wait(timeout=1.0)

    def pending_deliveries(self) -> int:
        with self._db() as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()
        return int(row[0])

    def deliver_due(self) -> bool:
        """Deliver one due event; False when none is due. Safe across processes."""
        if not self.webhooks_on:
            return False
        now = time.time()
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT event_id, payload, attempts FROM outbox WHERE delivered IS NULL"
                " AND due <= ? AND claimed_until <= ? AND attempts < ? ORDER BY due LIMIT 1",
                (now, now, MAX_ATTEMPTS),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE outbox SET claimed_until = ? WHERE event_id = ?",
                    (now + CLAIM_S, row[0]),
                )
            conn.execute("COMMIT")
        if row is None:
            return False
        event_id, payload, attempts = row
        status = self._post(payload.encode())
        with self._db() as conn:
            if status.startswith("2"):
                conn.execute(
                    "UPDATE outbox SET delivered = ?, attempts = ?, last_status = ?"
                    " WHERE event_id = ?",
                    (time.time(), attempts + 1, status, event_id),
                )
            else:
                delay = BACKOFF_S[min(attempts, len(BACKOFF_S) - 1)]
                conn.execute(
                    "UPDATE outbox SET due = ?, attempts = ?, last_status = ?,"
                    " claimed_until = 0 WHERE event_id = ?",
                    (time.time() + delay, attempts + 1, status, event_id),
                )
                log.warning(
                    "sandbox webhook delivery of %s failed (%s); retrying in %ss",
                    event_id,
                    status,
                    delay,
                )
        return True

    def _post(self, payload: bytes) -> str:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature.sign(payload, self.secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) token-store-sandbox",
        }
        try:
            response = requests.post(self.webhook_url, data=payload, headers=headers, timeout=30)
        except requests.RequestException as exc:
            return f"error: {type(exc).__name__}"
        return str(response.status_code)


def _refund_change(amount: int | None) -> Change:
    """Refund ``amount`` more (None or 0: all) of a paid session, capped at its total."""

    def change(session: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if session["payment_status"] != "paid":
            return None
        total = int(session["amount_total"])
        refunded = min(total, int(session.get("amount_refunded", 0)) + (amount or total))
        session["amount_refunded"] = refunded
        return "charge.refunded", _charge(session)

    return change


def _row_by_intent(conn: sqlite3.Connection, payment_intent: str) -> dict[str, Any]:
    """The checkout session or embedded payment intent that owns ``payment_intent``."""
    row = conn.execute(
        "SELECT body FROM sessions WHERE json_extract(body, '$.payment_intent') = ?",
        (payment_intent,),
    ).fetchone()
    if row is None:
        raise PaymentRefused(f"No such payment_intent: {payment_intent!r}")
    session: dict[str, Any] = json.loads(row[0])
    return session


def _refundable(session: dict[str, Any], amount: int | None) -> int:
    """The amount to refund now, or PaymentsError as Stripe would refuse it."""
    if session["payment_status"] != "paid":
        raise PaymentRefused(f"Payment {session['payment_intent']} has not succeeded; no refund")
    left = int(session["amount_total"]) - int(session.get("amount_refunded", 0))
    if left <= 0:
        raise PaymentRefused(f"Charge {_charge_id(session)} has already been refunded.")
    if amount is None:
        return left
    if amount < 1:
        raise PaymentRefused(f"Refund amount must be a positive integer, got {amount}.")
    if amount > left:
        raise PaymentRefused(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})."
        )
    return amount


def _replayed_refund(key: str, request: str, first_request: str, body: str) -> dict[str, Any]:
    """The first refund made with ``key``; Stripe refuses the key with other parameters."""
    if request != first_request:
        raise PaymentRefused(
            f"Keys for idempotent requests can only be used with the same parameters"
            f" they were first used with: {key!r}"
        )
    refund: dict[str, Any] = json.loads(body)
    return refund


def _refund_object(
    session: dict[str, Any], amount: int, metadata: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": "re_sandbox_" + uuid.uuid4().hex[:24],
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": _charge_id(session),
        "created": int(time.time()),
        "currency": session["currency"],
        "metadata": dict(metadata),
        "payment_intent": session["payment_intent"],
        "reason": None,
        "status": "succeeded",
    }


def _payment_intent(row: dict[str, Any]) -> dict[str, Any]:
    """The payment intent of a checkout session or an embedded payment, as Stripe shows it."""
    paid = row["payment_status"] == "paid"
    default = "processing" if row.get("status") == "complete" else "requires_payment_method"
    return {
        "id": row["payment_intent"],
        "object": "payment_intent",
        "amount": row["amount_total"],
        "amount_capturable": 0,
        "amount_received": row["amount_total"] if paid else 0,
        "capture_method": "automatic",
        "created": row["created"],
        "currency": row["currency"],
        "customer": row.get("customer"),
        "last_payment_error": row.get("last_payment_error"),
        "latest_charge": _charge_id(row) if paid else None,
        "livemode": False,
        "metadata": dict(row.get("metadata") or {}),
        "payment_method_types": list(row.get("payment_method_types") or ["card"]),
        "status": "succeeded" if paid else row.get("intent_status", default),
    }


def _charge_id(session: dict[str, Any]) -> str:
    return "ch_sandbox_" + _short(str(session["id"]))


def _charge(session: dict[str, Any]) -> dict[str, Any]:
    refunded = int(session.get("amount_refunded", 0))
    return {
        "id": _charge_id(session),
        "object": "charge",
        "amount": session["amount_total"],
        "amount_captured": session["amount_total"],
        "amount_refunded": refunded,
        "currency": session["currency"],
        "payment_intent": session["payment_intent"],
        "paid": True,
        "refunded": refunded >= int(session["amount_total"]),
        "status": "succeeded",
        "metadata": session.get("metadata", {}),
    }


def _line_items(pack: Pack) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": "li_sandbox_" + pack.id,
                "object": "item",
                "amount_total": pack.price_cents,
                "currency": pack.currency,
                "description": pack.name,
                "quantity": 1,
                "price": {
                    "id": pack.stripe_price_id or f"price_sandbox_{pack.id}",
                    "object": "price",
                    "unit_amount": pack.price_cents,
                    "currency": pack.currency,
                },
            }
        ],
        "has_more": False,
    }
