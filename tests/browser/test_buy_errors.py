"""When Buy cannot start a checkout, /buy-tokens says why in words, never raw JSON."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.support import (
    Shots,
    buy_button,
    pack_card,
    path_is,
    sign_in,
    unique,
)
from tests.support.server import AppServer

HOURLY_LIMIT = 5


def expect_readable(page: Page) -> None:
    alert = page.get_by_test_id("buy-error")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).not_to_contain_text("{")
    expect(alert).not_to_contain_text("_")  # no error codes such as purchase_limit_reached


def test_the_purchase_limit_is_explained_with_when_to_retry(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('limit')}@example.com")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf
    for _ in range(HOURLY_LIMIT):
        started = page.request.post(
            f"{app.url}/api/tokens/create-checkout-session",
            data={"package": "starter"},
            headers={"X-CSRFToken": csrf},
        )
        assert started.ok, started.text()

    buy_button(pack_card(page, "popular")).click()
    expect_readable(page)
    expect(page.get_by_test_id("buy-error")).to_contain_text(
        re.compile(r"limit.*again in about \d+ (second|minute|hour)s?", re.IGNORECASE)
    )
    assert path_is("/buy-tokens")(page.url)
    expect(buy_button(pack_card(page, "popular"))).to_be_enabled()
    shots(page, "limit-reached")


def test_a_buyer_signed_out_meanwhile_is_offered_sign_in(
    page: Page, app: AppServer, shots: Shots
) -> None:
    sign_in(page, f"{unique('expired')}@example.com")
    # Every response refreshes the session cookie: let this page finish loading first.
    page.wait_for_load_state("networkidle")
    other_tab = page.context.new_page()
    other_tab.goto("/tokens/history")
    other_tab.get_by_role("button", name="Sign out").click()
    expect(other_tab.get_by_role("link", name="Sign in")).to_be_visible()
    other_tab.wait_for_load_state("networkidle")
    other_tab.close()

    buy_button(pack_card(page, "starter")).click()
    expect_readable(page)
    link = page.get_by_test_id("buy-error").get_by_role("link")
    expect(link).to_have_attribute("href", "/signin?next=/buy-tokens")
    assert path_is("/buy-tokens")(page.url)
    shots(page, "signed-out")
    link.click()
    page.wait_for_url(path_is("/signin"))
