"""One person tips another from the history page; both histories show it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.support import (
    PageFactory,
    Shots,
    api_balance,
    buy_popular_hosted,
    expect_header_balance,
    has_amount,
    history_rows,
    number_pattern,
    row_cells,
    sign_in,
    unique,
)
from tests.support.server import AppServer

TIP = 25


def test_a_tip_moves_tokens_and_shows_in_both_histories(
    open_page: PageFactory, app: AppServer, shots: Shots
) -> None:
    alice_name, bob_name = "alice", "bob"  # each name is used by this test alone
    bob = open_page()
    sign_in(bob, f"{bob_name}@example.com", bob_name)
    expect_header_balance(bob, 0)
    shots(bob, "bob-signed-in")

    alice = open_page()
    sign_in(alice, f"{alice_name}@example.com", alice_name)
    buy_popular_hosted(alice, shots)
    alice.goto("/tokens/history")
    form = alice.get_by_test_id("tip-form")
    form.get_by_label("Recipient username", exact=True).fill(bob_name)
    form.get_by_label("Amount", exact=True).fill(str(TIP))
    form.get_by_label("Note (optional)", exact=True).fill("Thanks for the help")
    shots(alice, "alice-tip-form")
    form.get_by_role("button", name="Send tip", exact=True).click()
    result = alice.get_by_test_id("tip-result")
    expect(result).to_be_visible()
    expect(result).to_have_attribute("role", "status")
    expect(result).to_contain_text(bob_name)
    shots(alice, "alice-tip-sent")

    alice.goto("/tokens/history")
    expect(alice.locator('tr[data-testid="history-row"]')).to_have_count(2)
    sent = history_rows(alice, "transfer")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text(f"@{bob_name}")
    cells = row_cells(sent)
    assert has_amount(cells, "-", TIP), cells
    assert number_pattern(110 - TIP).search(cells[-1]), f"balance after: {cells}"
    expect_header_balance(alice, 110 - TIP)
    shots.docs(shots(alice, "alice-history"), "history")

    alice.get_by_label("Type", exact=True).select_option("purchase")
    alice.get_by_role("button", name="Filter", exact=True).click()
    alice.wait_for_url(lambda url: "type=purchase" in url)
    expect(alice.locator('tr[data-testid="history-row"]')).to_have_count(1)
    expect(history_rows(alice, "purchase")).to_have_count(1)
    shots(alice, "alice-history-purchases-only")

    bob.goto("/tokens/history")
    received = history_rows(bob, "transfer")
    expect(received).to_have_count(1)
    expect(received).to_contain_text(f"@{alice_name}")
    cells = row_cells(received)
    assert has_amount(cells, "+", TIP), cells
    assert number_pattern(TIP).search(cells[-1]), f"balance after: {cells}"
    expect_header_balance(bob, TIP)
    shots(bob, "bob-history")

    assert api_balance(alice, app.url) + api_balance(bob, app.url) == 110


def test_a_tip_to_an_unknown_user_is_refused_in_the_page(
    open_page: PageFactory, app: AppServer, shots: Shots
) -> None:
    alice = open_page()
    sign_in(alice, f"{unique('carol')}@example.com", unique("carol_"))
    buy_popular_hosted(alice, shots)
    alice.goto("/tokens/history")
    form = alice.get_by_test_id("tip-form")
    form.get_by_label("Recipient username", exact=True).fill(unique("nobody_"))
    form.get_by_label("Amount", exact=True).fill("5")
    form.get_by_role("button", name="Send tip", exact=True).click()
    alert = alice.get_by_role("alert").filter(visible=True)
    expect(alert).to_have_count(1)
    expect(alert).to_have_text(re.compile(r"\w"))
    expect(alice.get_by_test_id("tip-result")).to_be_hidden()
    shots(alice, "unknown-recipient")
    assert api_balance(alice, app.url) == 110
