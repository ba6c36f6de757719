"""The balance follows the account in open pages, by conditional polling (ETag, 304).

A tip sent from another session appears in the recipient's open history page
(header, balance card and a new row) without a reload; the balance endpoint
answers 304 while nothing changed and 200 with a new ETag once it has.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.support import (
    PageFactory,
    Shots,
    expect_header_balance,
    history_rows,
    sign_in,
    unique,
)
from tests.support.purchases import Buyer, buy
from tests.support.server import AppServer

TIP = 7
LIVE_WAIT_MS = 20_000  # a few polling rounds on a busy machine


def test_balance_answers_304_until_the_account_changes(app: AppServer) -> None:
    reader = Buyer(app.url, f"{unique('etag')}@example.com", unique("etag"))
    first = reader.get("/api/tokens/balance")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    again = reader.get("/api/tokens/balance", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")

    sender = Buyer(app.url, f"{unique('etag-sender')}@example.com", unique("etags"))
    buy(app.url, sender)
    sent = sender.post(
        "/api/tokens/transfer",
        json={"recipient": reader.user_id, "amount": TIP},
        headers={"Idempotency-Key": unique("tip")},
    )
    assert sent.status_code == 200, sent.text
    changed = reader.get("/api/tokens/balance", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["balance"] == TIP
    assert changed.headers["ETag"] != etag


def test_a_tip_from_another_session_appears_in_the_open_history_page(
    open_page: PageFactory, app: AppServer, shots: Shots
) -> None:
    name = unique("live")
    page = open_page()
    sign_in(page, f"{name}@example.com", name, next_path="/tokens/history")
    expect_header_balance(page, 0)
    expect(page.locator('tr[data-testid="history-row"]')).to_have_count(0)
    shots(page, "before-tip")

    sender = Buyer(app.url, f"{unique('tipper')}@example.com", unique("tipper"))
    buy(app.url, sender)
    sent = sender.post(
        "/api/tokens/transfer",
        json={"recipient": name, "amount": TIP, "note": "live"},
        headers={"Idempotency-Key": unique("tip")},
    )
    assert sent.status_code == 200, sent.text

    expect_header_balance(page, TIP, timeout=LIVE_WAIT_MS)
    expect(page.get_by_test_id("history-balance")).to_have_text(
        re.compile(rf"^\s*{TIP}\s*$"), timeout=LIVE_WAIT_MS
    )
    expect(history_rows(page, "transfer")).to_have_count(1, timeout=LIVE_WAIT_MS)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    shots(page, "after-tip")
