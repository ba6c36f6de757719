"""An event from the other Stripe mode is acknowledged, never applied, and alerted.

A test-mode event reaching a live deployment (or the reverse) must not mint
tokens: it is answered 200 (Stripe stops retrying), recorded as
``livemode_mismatch``, and leaves a security alert. An event with no boolean
``livemode`` is no Stripe event: 400.
"""

from __future__ import annotations

from tests.integration.conftest import RunningApp
from tests.support.purchases import Buyer, event, send, session_object


def paid_event(buyer: Buyer, livemode: object) -> dict[str, object]:
    started = buyer.checkout("popular")
    obj = session_object(started["session_id"], started["purchase_id"], buyer.user_id)
    return {**event("checkout.session.completed", obj), "livemode": livemode}


def test_a_live_event_on_a_test_mode_app_is_acknowledged_not_applied(
    running_app: RunningApp,
) -> None:
    buyer = Buyer(running_app.url, "livemode@example.com")
    live = paid_event(buyer, True)
    answer = send(running_app.url, live)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "livemode_mismatch"
    assert buyer.balance() == 0
    alerts = [a.type for a in running_app.store.list_alerts() if a.type == "livemode_mismatch"]
    assert alerts == ["livemode_mismatch"]
    assert send(running_app.url, live).json()["duplicate"] is True

    # The same payment in the app's own mode is credited as usual.
    same = {**live, "id": f"{live['id']}_test", "livemode": False}
    assert send(running_app.url, same).json()["outcome"] == "paid"
    assert buyer.balance() == 110


def test_an_event_without_a_boolean_livemode_is_refused(running_app: RunningApp) -> None:
    buyer = Buyer(running_app.url, "nolivemode@example.com")
    for livemode in (None, "false", 0):
        answer = send(running_app.url, paid_event(buyer, livemode))
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_payload")
    assert buyer.balance() == 0
