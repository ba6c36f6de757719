"""Buying a pack through the sandbox's hosted checkout, as a person does in a browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.support import (
    DECLINED_CARD,
    DECLINED_MESSAGE,
    GOOD_CARD,
    Shots,
    api_balance,
    api_get,
    expect_header_balance,
    expect_paid,
    has_amount,
    history_rows,
    number_pattern,
    pack_card,
    path_is,
    pay_hosted,
    query,
    row_cells,
    sign_in,
    start_hosted_checkout,
    unique,
)
from tests.support.server import AppServer


def test_hosted_checkout_credits_the_pack_and_history_shows_it(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, "maya@example.com", "maya")
    expect_header_balance(page, 0)
    expect(page.locator('[data-testid="pack-card"]')).to_have_count(4)
    popular = pack_card(page, "popular")
    expect(popular).to_contain_text("Popular")
    expect(popular).to_contain_text("110")
    expect(popular).to_contain_text("9.99")
    shots.docs(shots(page, "packs"), "packs")

    started = start_hosted_checkout(page, "popular")
    expect(page.get_by_text("9.99")).to_be_visible()
    shots(page, "sandbox-checkout")
    pay_hosted(page, GOOD_CARD)

    page.wait_for_url(path_is("/token-purchase-success"))
    assert query(page)["session_id"] == [started["session_id"]]
    shots(page, "success-first-render")
    expect_paid(page, 110)
    expect(page.get_by_test_id("receipt")).to_contain_text(started["purchase_id"])
    expect_header_balance(page, 110)
    shots.docs(shots(page, "success-paid"), "success")
    assert api_balance(page, app.url) == 110
    purchase = api_get(page, app.url, f"/api/tokens/purchases/{started['purchase_id']}")
    assert purchase["purchase"]["state"] == "paid"

    page.goto("/tokens/history")
    rows = page.locator('tr[data-testid="history-row"]')
    expect(rows).to_have_count(1)
    row = history_rows(page, "purchase")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Popular")
    cells = row_cells(row)
    assert has_amount(cells, "+", 110), cells
    assert number_pattern(110).search(cells[-1]), f"balance after should be 110: {cells}"
    expect_header_balance(page, 110)
    shots(page, "history")


def test_a_declined_card_shows_the_error_and_credits_nothing(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('declined')}@example.com")
    shots(page, "signed-in")
    started = start_hosted_checkout(page, "starter", double_click=True)
    pay_hosted(page, DECLINED_CARD)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(DECLINED_MESSAGE)
    assert page.url.endswith(f"/sandbox/checkout/{started['session_id']}")
    shots(page, "declined")
    assert api_get(page, app.url, "/sandbox/deliveries")["pending"] == 0
    assert api_balance(page, app.url) == 0
    purchase = api_get(page, app.url, f"/api/tokens/purchases/{started['purchase_id']}")
    assert purchase["purchase"]["state"] != "paid"
    assert purchase["balance"] == 0

    page.get_by_role("link", name="Cancel and go back").click()
    page.wait_for_url(path_is("/token-purchase-cancel"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    shots(page, "cancelled")
    page.get_by_role("link", name="Back to the token packs").click()
    page.wait_for_url(path_is("/buy-tokens"))
    expect_header_balance(page, 0)
    shots(page, "back-to-packs")
    page.goto("/tokens/history")
    expect(page.locator('tr[data-testid="history-row"]')).to_have_count(0)
    shots(page, "empty-history")


def test_a_bank_debit_is_confirmed_on_the_open_success_page_when_it_settles(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('bank')}@example.com")
    started = start_hosted_checkout(page, "pro")
    page.get_by_role("button", name="Pay by bank debit (settles later)").click()
    page.wait_for_url(path_is("/token-purchase-success"))
    expect(page.get_by_test_id("purchase-state")).to_have_text("awaiting_payment")
    expect(page.get_by_test_id("confirming")).to_be_visible()
    expect(page.get_by_test_id("celebration")).to_be_hidden()
    expect(page.get_by_test_id("balance")).to_have_text("0")
    shots(page, "confirming")

    dashboard = page.context.new_page()
    dashboard.goto("/sandbox/dashboard")
    session_row = dashboard.locator("tr", has_text=started["session_id"])
    session_row.get_by_role("button", name="Bank debit succeeds").click()
    dashboard.wait_for_load_state()
    shots(dashboard, "sandbox-dashboard-settled")
    dashboard.close()

    # The success page was left open: its polling picks up the webhook's credit.
    expect_paid(page, 250)
    expect_header_balance(page, 250)
    shots(page, "credited-while-open")
    assert api_balance(page, app.url) == 250
