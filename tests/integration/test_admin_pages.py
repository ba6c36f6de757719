"""The operator's dashboard under gunicorn with the payment sandbox: who may see it, and what
each action does and records."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from services.auth import dev_user_id
from services.ledger.model import TxnType
from services.operations.model import LAST_RECONCILIATION
from services.payments.model import Purchase, PurchaseState
from services.store import open_store
from services.store.port import Store
from tests.support.purchases import Buyer, event, send, session_object, wait_for
from tests.support.server import AppServer, tokens_cli
from tests.support.stores import opened

OPS_EMAIL = "ops@example.com"  # an admin through OPERATOR_EMAILS
LEAD_EMAIL = "lead@example.com"  # an admin through ADMIN_USER_IDS
PAGES = ("/admin", "/admin/users", "/admin/users?q=someone")


class Admin(Buyer):
    """A signed-in browser that posts the dashboard's forms."""

    def form(self, path: str, key: str | None = None, **fields: str) -> requests.Response:
        data = {"csrf_token": self.csrf, "idempotency_key": key or uuid.uuid4().hex, **fields}
        return self.http.post(
            f"{self.base_url}{path}", data=data, allow_redirects=False, timeout=30
        )

    def page(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer(
        {"OPERATOR_EMAILS": OPS_EMAIL, "ADMIN_USER_IDS": f"other,{dev_user_id(LEAD_EMAIL)}"}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(app: AppServer) -> Iterator[Store]:
    with opened(app) as store:
        yield store


@pytest.fixture
def ops(app: AppServer) -> Admin:
    return Admin(app.url, OPS_EMAIL, username="ops")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def stored(store: Store, purchase_id: str) -> Purchase:
    found = store.get_purchase(purchase_id)
    assert found is not None
    return found


def purchase_in_review(app: AppServer, buyer: Buyer) -> str:
    """A checkout whose signed event reports the wrong amount: held for an operator."""
    started = buyer.checkout("popular")
    obj = session_object(started["session_id"], started["purchase_id"], buyer.user_id)
    obj.update(amount_total=500, amount_subtotal=500)
    outcome = send(app.url, event("checkout.session.completed", obj)).json()["outcome"]
    assert outcome == "needs_review"
    return str(started["purchase_id"])


def pay_by_card(app: AppServer, buyer: Buyer, started: dict[str, Any]) -> None:
    paid = buyer.pay_on_checkout_page(started["url"])
    assert paid.status_code == 303, paid.text


def flash(response: requests.Response, admin: Admin) -> str:
    assert response.status_code == 303, response.text
    page = admin.get(response.headers["Location"].removeprefix(admin.base_url)).text
    found = re.search(r'data-testid="admin-result"[^>]*>([^<]*)<', page)
    assert found is not None, page
    return found.group(1)


def audit_of(store: Store, target: str) -> list[Any]:
    return store.list_audit(20, target=target)


# -- who may see it ---------------------------------------------------------------------


def test_signed_out_visitors_are_sent_to_sign_in(app: AppServer) -> None:
    anonymous = requests.Session()
    for path, back in (("/admin", "/admin"), ("/admin/users?q=ann", "/admin/users%3Fq%3Dann")):
        response = anonymous.get(f"{app.url}{path}", allow_redirects=False, timeout=10)
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/signin?next={back}")
    posted = anonymous.post(
        f"{app.url}/admin/users/x/adjust", data={"amount": "5"}, allow_redirects=False, timeout=10
    )
    assert (posted.status_code, posted.headers["Location"]) == (303, "/signin?next=/admin")
    api = anonymous.post(f"{app.url}/admin/api/grants", json={}, timeout=10)
    assert (api.status_code, api.json()["code"]) == (401, "not_signed_in")


def test_non_admins_get_403_on_every_page_and_action(app: AppServer, store: Store) -> None:
    victim = Buyer(app.url, f"{unique('v')}@example.com", username=unique("victim"))
    review_id = purchase_in_review(app, victim)
    [alert] = [a for a in store.list_alerts() if a.purchase_id == review_id]
    customer = Admin(app.url, f"{unique('c')}@example.com")
    for path in PAGES:
        page = customer.get(path)
        assert page.status_code == 403
        assert page.headers["Content-Type"].startswith("text/html")
        assert "operator account" in page.text
    actions: list[tuple[str, dict[str, str]]] = [
        (f"/admin/purchases/{review_id}/approve", {}),
        (f"/admin/purchases/{review_id}/refund", {"amount": "500"}),
        (f"/admin/alerts/{alert.id}/acknowledge", {}),
        (f"/admin/users/{victim.user_id}/adjust", {"amount": "50", "reason": "free tokens"}),
        (f"/admin/users/{customer.user_id}/adjust", {"amount": "50", "reason": "me"}),
    ]
    for path, fields in actions:
        assert customer.form(path, **fields).status_code == 403, path
    api = customer.post("/admin/api/grants", json={"user": customer.user_id, "amount": 5})
    assert (api.status_code, api.json()["code"]) == (403, "forbidden")
    assert stored(store, review_id).state is PurchaseState.NEEDS_REVIEW
    assert (victim.balance(), customer.balance()) == (0, 0)
    [after] = [a for a in store.list_alerts() if a.id == alert.id]
    assert after.acknowledged_at is None
    assert audit_of(store, f"purchase:{review_id}") == []
    assert audit_of(store, f"user:{victim.user_id}") == []


def test_admins_come_from_the_email_list_or_the_user_id_list(app: AppServer) -> None:
    for email in (OPS_EMAIL, LEAD_EMAIL):
        admin = Admin(app.url, email)
        for path in PAGES:
            assert admin.get(path).status_code in (200, 404), path  # 404: no such user
        assert "Operator dashboard" in admin.page("/admin")


def test_every_form_carries_a_fresh_idempotency_key(app: AppServer, ops: Admin) -> None:
    purchase_in_review(app, Buyer(app.url, f"{unique('k')}@example.com"))
    first, second = ops.page("/admin"), ops.page("/admin")
    keys = re.findall(r'name="idempotency_key" value="([0-9a-f]{32})"', first)
    assert len(keys) >= 3 and len(set(keys)) == len(keys)  # one per form
    assert not set(keys) & set(re.findall(r'name="idempotency_key" value="(\w+)"', second))
    assert first.count('name="csrf_token"') >= len(keys)


# -- actions ----------------------------------------------------------------------------


def test_approving_credits_once_even_when_submitted_twice(
    app: AppServer, store: Store, ops: Admin
) -> None:
    buyer = Buyer(app.url, f"{unique('a')}@example.com")
    purchase_id = purchase_in_review(app, buyer)
    assert f'data-purchase="{purchase_id}"' in ops.page("/admin")
    path, key = f"/admin/purchases/{purchase_id}/approve", uuid.uuid4().hex
    first = ops.form(path, key=key, reason="paid in two parts")
    assert "110 tokens credited" in flash(first, ops)
    assert "sent before" in flash(ops.form(path, key=key, reason="paid in two parts"), ops)
    assert buyer.balance() == 110
    assert [t["type"] for t in buyer.history()] == ["purchase"]
    paid = stored(store, purchase_id)
    assert paid.state is PurchaseState.PAID and paid.credit_txn_id is not None
    credit = store.get_transaction(paid.credit_txn_id)
    assert credit is not None and credit.refs["approved_by"] == ops.user_id
    [record] = audit_of(store, f"purchase:{purchase_id}")
    assert (record.admin_id, record.action, record.reason) == (
        ops.user_id,
        "approve_purchase",
        "paid in two parts",
    )
    again = ops.form(path, reason="once more")  # a new form: refused, nothing changes
    assert again.status_code == 409 and "paid and credited already" in again.text
    assert buyer.balance() == 110 and len(audit_of(store, f"purchase:{purchase_id}")) == 1
    assert f'data-purchase="{purchase_id}"' not in ops.page("/admin")


def test_a_refund_goes_through_the_sandbox_and_the_webhook_claws_back(
    app: AppServer, store: Store, ops: Admin
) -> None:
    buyer = Buyer(app.url, f"{unique('r')}@example.com", username=unique("refunded"))
    started = buyer.checkout("popular")
    pay_by_card(app, buyer, started)
    wait_for(lambda: buyer.balance() == 110, "the sandbox's payment to be credited")
    purchase_id = started["purchase_id"]
    lookup = ops.page(f"/admin/users?q=@{buyer_name(store, buyer)}")
    assert f"/admin/purchases/{purchase_id}/refund" in lookup
    back = f"/admin/users?q={buyer.user_id}"
    done = ops.form(f"/admin/purchases/{purchase_id}/refund", reason="asked by email", back=back)
    assert done.headers["Location"].endswith(back)
    assert "Refund of 9.99 USD requested" in flash(done, ops)
    wait_for(lambda: buyer.balance() == 0, "the refund event to claw the tokens back")
    refunded = stored(store, purchase_id)
    assert (refunded.refunded_amount, refunded.refunded_tokens) == (999, 110)
    [record] = audit_of(store, f"purchase:{purchase_id}")
    assert (record.admin_id, record.action, record.reason) == (
        ops.user_id,
        "refund_purchase",
        "asked by email",
    )
    assert (record.details["amount"], record.details["currency"]) == (999, "usd")
    assert [t["type"] for t in buyer.history()] == ["refund", "purchase"]


def buyer_name(store: Store, buyer: Buyer) -> str:
    user = store.get_user(buyer.user_id)
    assert user is not None and user.username
    return user.username


def test_refunding_a_purchase_in_review_takes_no_tokens(
    app: AppServer, store: Store, ops: Admin
) -> None:
    buyer = Buyer(app.url, f"{unique('h')}@example.com")
    started = buyer.checkout("popular")
    purchase_id = started["purchase_id"]
    # The record expects 10.00, the sandbox charges 9.99: held for review.
    store.update_purchase(purchase_id, lambda p: p.with_changes(p.updated_at, amount=1000))
    pay_by_card(app, buyer, started)
    wait_for(
        lambda: stored(store, purchase_id).state is PurchaseState.NEEDS_REVIEW,
        "the purchase to go to review",
    )
    done = ops.form(f"/admin/purchases/{purchase_id}/refund", amount="999", reason="mismatch")
    assert "Refund of 9.99 USD requested" in flash(done, ops)
    wait_for(lambda: stored(store, purchase_id).refunded_amount == 999, "the refund event")
    held = stored(store, purchase_id)
    assert (held.refunded_tokens, held.credit_txn_id) == (0, None)
    assert buyer.get("/api/tokens/balance").json()["debt"] == 0 and buyer.balance() == 0
    refused = ops.form(f"/admin/purchases/{purchase_id}/approve")
    assert refused.status_code == 409 and "refunded or disputed" in refused.text
    assert buyer.balance() == 0


def test_acknowledging_an_alert_records_who(app: AppServer, store: Store, ops: Admin) -> None:
    purchase_id = purchase_in_review(app, Buyer(app.url, f"{unique('x')}@example.com"))
    [alert] = [a for a in store.list_alerts() if a.purchase_id == purchase_id]
    assert alert.type == "purchase_needs_review" and alert.acknowledged_at is None
    done = ops.form(f"/admin/alerts/{alert.id}/acknowledge", reason="known customer")
    assert "Acknowledged alert" in flash(done, ops)
    [seen] = [a for a in store.list_alerts() if a.id == alert.id]
    assert seen.acknowledged_by == ops.user_id and seen.acknowledged_at is not None
    [record] = audit_of(store, f"alert:{alert.id}")
    assert (record.admin_id, record.action, record.reason) == (
        ops.user_id,
        "acknowledge_alert",
        "known customer",
    )
    row = re.search(rf'data-alert="{alert.id}".*?</tr>', ops.page("/admin"), re.S)
    assert row is not None and "data-acknowledged" in row.group(0)
    missing = ops.form("/admin/alerts/alert_nope/acknowledge")
    assert missing.status_code == 404 and audit_of(store, "alert:alert_nope") == []


def test_a_grant_and_a_negative_adjustment_change_the_balance(
    app: AppServer, store: Store, ops: Admin
) -> None:
    user = Buyer(app.url, f"{unique('g')}@example.com", username=unique("granted"))
    path = f"/admin/users/{user.user_id}/adjust"
    assert "Granted 40 tokens" in flash(ops.form(path, amount="40", reason="outage credit"), ops)
    assert "Took 15 tokens" in flash(ops.form(path, amount="-15", reason="double grant"), ops)
    assert user.balance() == 25
    history = user.history()
    assert [(t["type"], t["amount"], t["description"]) for t in history] == [
        ("adjustment", -15, "Adjustment: double grant"),
        ("grant", 40, "Grant: outage credit"),
    ]
    txn = store.get_transaction(history[0]["details"]["transaction_id"])
    assert txn is not None and (txn.type, txn.refs["admin_id"]) == (TxnType.ADJUSTMENT, ops.user_id)
    records = audit_of(store, f"user:{user.user_id}")
    assert [(r.action, r.reason, r.details["amount"]) for r in records] == [
        ("adjust_tokens", "double grant", -15),
        ("grant_tokens", "outage credit", 40),
    ]
    assert {r.admin_id for r in records} == {ops.user_id}
    page = ops.page(f"/admin/users?q={user.user_id}")
    assert re.search(r"<dd data-balance>25</dd>", page)
    assert "Adjustment: double grant" in page and "outage credit" in page
    too_much = ops.form(path, amount="-26", reason="more than there is")
    assert too_much.status_code == 402 and user.balance() == 25


def test_a_missing_reason_is_a_400_and_changes_nothing(
    app: AppServer, store: Store, ops: Admin
) -> None:
    user = Buyer(app.url, f"{unique('n')}@example.com")
    path = f"/admin/users/{user.user_id}/adjust"
    for fields in ({"amount": "10", "reason": "  "}, {"amount": "10"}):
        refused = ops.form(path, **fields)
        assert refused.status_code == 400
        assert "A reason is required" in refused.text
    bad_amount = ops.form(path, amount="ten", reason="why not")
    assert bad_amount.status_code == 400 and "whole number of tokens" in bad_amount.text
    no_key = ops.form(path, key=" ", amount="10", reason="why not")
    assert no_key.status_code == 400
    assert user.balance() == 0 and user.history() == []
    assert audit_of(store, f"user:{user.user_id}") == []


def test_reconcile_stores_its_result_for_the_dashboard() -> None:
    server = AppServer({"OPERATOR_EMAILS": OPS_EMAIL}).start()
    try:
        check_reconcile_results(server)
    finally:
        server.stop()


def check_reconcile_results(app: AppServer) -> None:
    ops = Admin(app.url, OPS_EMAIL)
    assert "Never run" in ops.page("/admin")
    buyer = Buyer(app.url, "reconciled@example.com")
    started = buyer.checkout("popular")
    pay_by_card(app, buyer, started)
    wait_for(lambda: buyer.balance() == 110, "the sandbox's payment to be credited")
    done = tokens_cli(app.env, "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    store = open_store(app.env["STORE_URL"])
    result = store.get_setting(LAST_RECONCILIATION)
    assert result is not None
    assert (result["finished"], result["ok"], result["problems"]) == (True, True, 0)
    assert result["provider_checked"] is True and result["transactions"] == 1
    section = re.search(r'data-testid="reconciliation".*?</section>', ops.page("/admin"), re.S)
    assert section is not None and "everything reconciles" in section.group(0)
    # A payment the provider never saw, credited from a hand-made event: a difference.
    other = buyer.checkout("popular")
    obj = session_object(other["session_id"], other["purchase_id"], buyer.user_id)
    assert send(app.url, event("checkout.session.completed", obj)).json()["outcome"] == "paid"
    differs = tokens_cli(app.env, "reconcile")
    assert differs.returncode == 1, differs.stdout + differs.stderr
    result = store.get_setting(LAST_RECONCILIATION)
    store.close()
    assert result is not None and (result["ok"], result["problems"]) == (False, 1)
    assert result["differences"][0]["subject"] == other["purchase_id"]
    section = re.search(r'data-testid="reconciliation".*?</section>', ops.page("/admin"), re.S)
    assert section is not None and "1 difference found" in section.group(0)
