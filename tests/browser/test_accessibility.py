"""axe-core on the pages people use: no serious or critical violations."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Page, expect

from tests.browser.support import (
    Shots,
    buy_popular_hosted,
    sign_in,
    unique,
)

BLOCKING = {"serious", "critical"}


def blocking_violations(page: Page) -> list[str]:
    """axe's serious and critical findings on the page, one readable line per node."""
    response: dict[str, Any] = Axe().run(page).response
    lines = []
    for violation in response["violations"]:
        if violation.get("impact") not in BLOCKING:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        lines.append(
            f"{page.url}: {violation['id']} ({violation['impact']}): {violation['help']}"
            f" -> {targets}"
        )
    return lines


def test_the_purchase_pages_have_no_serious_accessibility_violations(
    page: Page, shots: Shots
) -> None:
    found: list[str] = []
    page.goto("/signin")
    found += blocking_violations(page)
    sign_in(page, f"{unique('axe')}@example.com", unique("axe_"))
    expect(page.locator('[data-testid="pack-card"]')).to_have_count(4)
    shots(page, "buy-tokens")
    found += blocking_violations(page)

    buy_popular_hosted(page, shots)
    found += blocking_violations(page)

    page.goto("/tokens/history")
    expect(page.locator('tr[data-testid="history-row"]')).to_have_count(1)
    shots(page, "history")
    found += blocking_violations(page)

    page.goto("/token-purchase-cancel")
    found += blocking_violations(page)
    assert not found, "accessibility violations:\n" + "\n".join(found)
