"""What the browser tests share: screenshots per step, sign-in, buying, reading balances."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from playwright.sync_api import Locator, Page, Route, ViewportSize, expect

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_ROOT = ROOT / "build" / "browser"
DOCS_DIR = ROOT / "docs" / "screenshots"
# Debian's package puts it here; CHROMIUM names another path (ops/setup-test-machine reads it too).
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
MOBILE: ViewportSize = {"width": 375, "height": 812}

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
DECLINED_MESSAGE = "Your card was declined."
WEBHOOK_WAIT_MS = 20_000  # credits arrive asynchronously through the sandbox webhook
PACK_TOKENS = {"starter": 50, "popular": 110, "pro": 250, "creator": 700}
DEV_FORM = "Development sign-in (sandbox only)"


def unique(prefix: str) -> str:
    """A short name no other test uses; purchase limits are per user."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "step"


def directory_name(test_name: str) -> str:
    """A test's name (parameters included) as one safe directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-.")


class Shots:
    """Numbered full-page screenshots of each step in one test's output directory."""

    def __init__(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.directory = directory
        self.count = 0

    def next_path(self, label: str, suffix: str) -> Path:
        self.count += 1
        return self.directory / f"{self.count:02d}-{slug(label)}{suffix}"

    def __call__(self, page: Page, label: str) -> Path:
        path = self.next_path(label, ".png")
        page.screenshot(path=path, full_page=True, animations="disabled")
        return path

    def keep_failure(self, page: Page, label: str) -> None:
        """The page as it was when the test failed: its HTML, and a screenshot if it renders."""
        html = self.next_path(f"{label}-failed", ".html")
        try:
            html.write_text(page.content(), encoding="utf-8")
            page.screenshot(path=html.with_suffix(".png"), full_page=True, timeout=5_000)
        except Exception as exc:  # a crashed page: say so instead of hiding the test's failure
            html.with_suffix(".txt").write_text(f"{page.url}: {exc}\n", encoding="utf-8")

    def docs(self, shot: Path, name: str) -> None:
        """With DOCS_SCREENSHOTS=1, publish ``shot`` as docs/screenshots/<name>.png."""
        if os.environ.get("DOCS_SCREENSHOTS") == "1":
            DOCS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_DIR / f"{name}.png")


PageFactory = Callable[..., Page]


def path_is(expected: str) -> Callable[[str], bool]:
    return lambda url: urlparse(url).path == expected


def sign_in(page: Page, email: str, username: str | None = None, next_path: str = "") -> None:
    """Sign in through the sandbox development form; lands on ``next_path`` (or /buy-tokens)."""
    target = f"/signin?next={quote(next_path)}" if next_path else "/signin"
    page.goto(target)
    submit_dev_form(page, email, username)
    page.wait_for_url(path_is(next_path or "/buy-tokens"))


def submit_dev_form(page: Page, email: str, username: str | None = None) -> None:
    form = page.get_by_role("form", name=DEV_FORM)
    expect(form).to_be_visible()
    form.get_by_label("Email", exact=True).fill(email)
    if username is not None:
        form.get_by_label("Username (optional)", exact=True).fill(username)
    form.get_by_role("button", name="Sign in", exact=True).click()


def number_pattern(value: int) -> re.Pattern[str]:
    """``value`` as a whole number inside a text (not part of a longer number)."""
    return re.compile(rf"(?<![\d.,]){value}(?!\d|[.,]\d)")


def expect_header_balance(page: Page, balance: int, timeout: float = 10_000) -> None:
    expect(page.get_by_test_id("header-balance")).to_contain_text(
        number_pattern(balance), timeout=timeout
    )


def api_get(page: Page, base_url: str, path: str) -> dict[str, Any]:
    """GET a JSON route with the page's cookies (page.request shares the context's)."""
    response = page.request.get(f"{base_url}{path}")
    assert response.ok, f"GET {path}: {response.status} {response.text()}"
    body: dict[str, Any] = response.json()
    return body


def api_balance(page: Page, base_url: str) -> int:
    return int(api_get(page, base_url, "/api/tokens/balance")["balance"])


def pack_card(page: Page, pack: str) -> Locator:
    return page.locator(f'[data-testid="pack-card"][data-pack="{pack}"]')


def buy_button(card: Locator) -> Locator:
    return card.get_by_role("button", name="Buy", exact=True)


@contextmanager
def capture_json(page: Page, path: str) -> Iterator[list[dict[str, Any]]]:
    """Collect the JSON answers the page gets from ``path`` while the block runs.

    The answers pass through unchanged; reading them here works even when the
    page navigates away straight after (a plain response listener cannot).
    """
    bodies: list[dict[str, Any]] = []

    def matches(url: str) -> bool:
        return urlparse(url).path == path

    def handle(route: Route) -> None:
        response = route.fetch()
        bodies.append(response.json())
        route.fulfill(response=response)

    page.route(matches, handle)
    try:
        yield bodies
    finally:
        page.unroute(matches, handle)


def start_hosted_checkout(page: Page, pack: str, double_click: bool = False) -> dict[str, Any]:
    """Click Buy on ``pack`` in /buy-tokens; returns the create-checkout-session answer."""
    button = buy_button(pack_card(page, pack))
    with capture_json(page, "/api/tokens/create-checkout-session") as answers:
        if double_click:
            button.dblclick()
        else:
            button.click()
        page.wait_for_url(lambda url: urlparse(url).path.startswith("/sandbox/checkout/"))
    assert answers, "Buy did not call create-checkout-session"
    assert len({answer.get("session_id") for answer in answers}) == 1, answers
    started = answers[0]
    assert started.get("success") is True, started
    assert path_is(f"/sandbox/checkout/{started['session_id']}")(page.url), page.url
    return started


def pay_hosted(page: Page, card_number: str) -> None:
    """On the sandbox's hosted checkout page: type the card and press Pay."""
    page.get_by_label("Card number").fill(card_number)
    page.get_by_role("button", name="Pay", exact=True).click()


def expect_paid(page: Page, balance: int) -> None:
    """The success page once the credit has landed (it polls while it has not)."""
    expect(page.get_by_test_id("purchase-state")).to_have_text("paid", timeout=WEBHOOK_WAIT_MS)
    expect(page.get_by_test_id("balance")).to_have_text(
        re.compile(rf"^\s*{balance}\s*$"), timeout=WEBHOOK_WAIT_MS
    )
    expect(page.get_by_test_id("celebration")).to_be_visible(timeout=WEBHOOK_WAIT_MS)
    expect(page.get_by_test_id("confirming")).to_be_hidden()


def buy_popular_hosted(page: Page, shots: Shots, before: int = 0) -> dict[str, Any]:
    """A whole hosted purchase of the popular pack from /buy-tokens, ending on the success page."""
    page.goto("/buy-tokens")
    started = start_hosted_checkout(page, "popular")
    shots(page, "sandbox-checkout")
    pay_hosted(page, GOOD_CARD)
    page.wait_for_url(path_is("/token-purchase-success"))
    expect_paid(page, before + PACK_TOKENS["popular"])
    shots(page, "purchase-success")
    return started


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def history_rows(page: Page, kind: str) -> Locator:
    return page.locator(f'tr[data-testid="history-row"][data-type="{kind}"]')


def row_cells(row: Locator) -> list[str]:
    return [" ".join(text.split()) for text in row.locator("td, th").all_text_contents()]


def amount_pattern(sign: str, value: int) -> re.Pattern[str]:
    """An amount cell: the signed number, after the hidden "Credit"/"Debit" for screen readers."""
    signs = {"+": r"\+", "-": "[-\u2212]"}[sign]
    return re.compile(rf"((Credit|Debit)\s)?{signs}\s?{value}(\stokens)?")


def has_amount(cells: list[str], sign: str, value: int) -> bool:
    return any(amount_pattern(sign, value).fullmatch(cell) for cell in cells)
