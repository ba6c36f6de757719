"""3D Secure in a browser: Stripe's authentication cards send the buyer through the
sandbox's challenge page, in hosted checkout and in the embedded form; completing it
pays, failing it charges nothing and leaves the payment open for another card."""

from __future__ import annotations

from urllib.parse import urlparse

from playwright.sync_api import Page, expect

from services.payments.sandbox_rules import AUTHENTICATION_FAILED
from tests.browser.support import (
    GOOD_CARD,
    Shots,
    api_balance,
    api_get,
    capture_json,
    expect_header_balance,
    expect_paid,
    pack_card,
    path_is,
    pay_hosted,
    query,
    sign_in,
    start_hosted_checkout,
    unique,
)
from tests.browser.test_accessibility import blocking_violations
from tests.support.server import AppServer

ALWAYS_AUTHENTICATE = "4000 0027 6000 3184"
AUTHENTICATION_REQUIRED = "4000 0025 0000 3155"
THREE_DS_2 = "4000 0000 0000 3220"


def on_challenge(page: Page, payment_id: str) -> None:
    page.wait_for_url(lambda url: urlparse(url).path == f"/sandbox/3ds/{payment_id}")
    expect(page.get_by_role("heading", name="Authenticate this payment")).to_be_visible()


def embedded_pay(page: Page, pack: str, card: str) -> dict[str, str]:
    """Pay ``pack`` in the embedded form with ``card``; the create-payment-intent answer."""
    pack_card(page, pack).get_by_role("button", name="Pay here", exact=True).click()
    form = page.get_by_test_id("embedded-payment")
    form.get_by_label("Card number").fill(card)
    with capture_json(page, "/api/tokens/create-payment-intent") as answers:
        form.get_by_test_id("embedded-pay").click()
        page.wait_for_url(lambda url: urlparse(url).path.startswith("/sandbox/3ds/"))
    assert len(answers) == 1, answers
    return answers[0]


def test_hosted_checkout_completes_the_challenge_and_pays(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('hosted3ds')}@example.com")
    started = start_hosted_checkout(page, "popular")
    pay_hosted(page, ALWAYS_AUTHENTICATE)
    on_challenge(page, started["session_id"])
    shots(page, "challenge")
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(path_is("/token-purchase-success"))
    assert query(page)["session_id"] == [started["session_id"]]
    expect_paid(page, 110)
    shots(page, "paid")
    assert api_balance(page, app.url) == 110


def test_hosted_checkout_after_a_failed_challenge_takes_another_card(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('hostedfail')}@example.com")
    started = start_hosted_checkout(page, "starter")
    pay_hosted(page, AUTHENTICATION_REQUIRED)
    on_challenge(page, started["session_id"])
    assert blocking_violations(page) == []
    page.get_by_role("button", name="Fail authentication").click()
    page.wait_for_url(path_is(f"/sandbox/checkout/{started['session_id']}"))
    expect(page.get_by_role("alert")).to_contain_text(AUTHENTICATION_FAILED)
    shots(page, "authentication-failed")
    assert blocking_violations(page) == []
    purchase = api_get(page, app.url, f"/api/tokens/purchases/{started['purchase_id']}")
    assert purchase["purchase"]["state"] == "pending"
    assert api_balance(page, app.url) == 0

    pay_hosted(page, GOOD_CARD)
    page.wait_for_url(path_is("/token-purchase-success"))
    expect_paid(page, 50)
    shots(page, "paid-with-another-card")


def test_the_embedded_form_completes_the_challenge_and_returns_paid(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('emb3ds')}@example.com")
    intent = embedded_pay(page, "pro", THREE_DS_2)
    on_challenge(page, intent["payment_intent_id"])
    shots(page, "challenge")
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(path_is("/token-purchase-success"))
    assert query(page)["payment_intent"] == [intent["payment_intent_id"]]
    assert query(page)["redirect_status"] == ["succeeded"]
    expect_paid(page, 250)
    expect_header_balance(page, 250)
    shots(page, "paid")


def test_the_embedded_form_after_a_failed_challenge_charges_nothing(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('embfail')}@example.com")
    intent = embedded_pay(page, "starter", ALWAYS_AUTHENTICATE)
    on_challenge(page, intent["payment_intent_id"])
    page.get_by_role("button", name="Fail authentication").click()
    page.wait_for_url(path_is("/token-purchase-success"))
    assert query(page)["redirect_status"] == ["failed"]
    expect(page.get_by_test_id("not-authenticated")).to_contain_text("could not authenticate")
    expect(page.get_by_test_id("confirming")).to_be_hidden()
    expect(page.get_by_test_id("celebration")).to_be_hidden()
    shots(page, "not-authenticated")
    assert blocking_violations(page) == []
    purchase = api_get(page, app.url, f"/api/tokens/purchases/{intent['purchase_id']}")
    assert purchase["purchase"]["state"] == "pending"  # Stripe keeps the intent for a card
    assert api_balance(page, app.url) == 0

    page.get_by_role("link", name="Try again").click()
    page.wait_for_url(path_is("/buy-tokens"))
    expect_header_balance(page, 0)
