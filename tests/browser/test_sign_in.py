"""Protected pages send signed-out visitors to sign-in and back, only ever to this site."""

from __future__ import annotations

from urllib.parse import quote, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import (
    Shots,
    expect_header_balance,
    path_is,
    query,
    submit_dev_form,
    unique,
)
from tests.support.server import AppServer


def test_a_signed_out_visitor_signs_in_and_returns_to_the_page_asked_for(
    page: Page, app: AppServer, shots: Shots
) -> None:
    page.goto("/tokens/history")
    page.wait_for_url(path_is("/signin"))
    assert query(page)["next"] == ["/tokens/history"]
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("header-balance")).to_have_count(0)
    shots(page, "sign-in-form")

    name = unique("back_")
    submit_dev_form(page, f"{name}@example.com", name)
    page.wait_for_url(path_is("/tokens/history"))
    expect_header_balance(page, 0)
    expect(page.locator("header")).to_contain_text(name)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shots(page, "history-after-sign-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto("/buy-tokens")
    page.wait_for_url(path_is("/signin"))
    shots(page, "signed-out-again")


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/steal", "//evil.example/steal", "/\\evil.example"],
    ids=["absolute-url", "scheme-relative", "backslash"],
)
def test_sign_in_never_sends_anyone_to_another_site(
    page: Page, app: AppServer, shots: Shots, target: str
) -> None:
    page.goto(f"/signin?next={quote(target, safe='')}")
    submit_dev_form(page, f"{unique('stay')}@example.com")
    page.wait_for_url(path_is("/buy-tokens"))
    assert urlparse(page.url).netloc == urlparse(app.url).netloc
    shots(page, "stayed-on-site")
