"""Paying on /buy-tokens itself: the embedded card form (the sandbox's, in sandbox mode)."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.browser.support import (
    DECLINED_CARD,
    DECLINED_MESSAGE,
    GOOD_CARD,
    Shots,
    api_balance,
    api_get,
    capture_json,
    expect_header_balance,
    expect_paid,
    pack_card,
    path_is,
    query,
    sign_in,
    unique,
)
from tests.support.server import AppServer


def open_embedded_form(page: Page, pack: str) -> Locator:
    card = pack_card(page, pack)
    card.get_by_role("button", name="Pay here", exact=True).click()
    form = page.get_by_test_id("embedded-payment")
    expect(form).to_be_visible()
    return form


def test_the_embedded_form_pays_and_the_success_page_shows_the_credit(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('embedded')}@example.com")
    shots(page, "signed-in")
    form = open_embedded_form(page, "pro")
    form.get_by_label("Card number").fill(GOOD_CARD)
    shots(page, "embedded-form")
    with capture_json(page, "/api/tokens/create-payment-intent") as answers:
        form.get_by_test_id("embedded-pay").click()
        page.wait_for_url(path_is("/token-purchase-success"))
    assert len(answers) == 1, answers
    intent = answers[0]
    assert intent["success"] is True, intent
    assert (intent["amount"], intent["tokens"]) == (1999, 250)
    assert query(page)["payment_intent"] == [intent["payment_intent_id"]]
    expect_paid(page, 250)
    expect(page.get_by_test_id("receipt")).to_contain_text(intent["purchase_id"])
    expect_header_balance(page, 250)
    shots(page, "success")
    assert api_balance(page, app.url) == 250

    page.goto("/tokens/history")
    expect(page.locator('tr[data-testid="history-row"][data-type="purchase"]')).to_have_count(1)
    shots(page, "history")


def test_a_declined_card_in_the_embedded_form_shows_the_error(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('embdecline')}@example.com")
    form = open_embedded_form(page, "starter")
    form.get_by_label("Card number").fill(DECLINED_CARD)
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/confirm" in r.url
    ) as confirmed:
        form.get_by_test_id("embedded-pay").click()
    assert confirmed.value.status == 402

    error = page.get_by_test_id("payment-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(DECLINED_MESSAGE)
    expect(error).to_have_attribute("role", "alert")
    assert path_is("/buy-tokens")(page.url)
    shots(page, "declined")
    assert api_balance(page, app.url) == 0
    assert api_get(page, app.url, "/sandbox/deliveries")["pending"] == 0
    expect_header_balance(page, 0)

    # The same form then pays with a good card, once.
    form.get_by_label("Card number").fill(GOOD_CARD)
    form.get_by_test_id("embedded-pay").click()
    page.wait_for_url(path_is("/token-purchase-success"))
    expect_paid(page, 50)
    shots(page, "paid-after-retry")
    page.goto("/tokens/history")
    expect(page.locator('tr[data-testid="history-row"]')).to_have_count(1)
    assert api_balance(page, app.url) == 50
