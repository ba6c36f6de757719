"""/buy-tokens on a phone, and with the keyboard alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import Page, Response, expect

from tests.browser.support import (
    MOBILE,
    PageFactory,
    Shots,
    buy_button,
    buy_popular_hosted,
    pack_card,
    sign_in,
    unique,
)

WIDTH = MOBILE["width"]
MAX_TABS = 60

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const card = el.closest('[data-testid="pack-card"]');
  return {
    tag: el.tagName.toLowerCase(),
    text: (el.innerText || el.value || '').trim(),
    label: el.getAttribute('aria-label'),
    pack: card ? card.dataset.pack : null,
    focusVisible: el.matches(':focus-visible'),
    outlineStyle: style.outlineStyle,
    outlineWidth: style.outlineWidth,
    boxShadow: style.boxShadow,
  };
}"""


def scroll_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_buy_tokens_fits_a_375px_phone(open_page: PageFactory, shots: Shots) -> None:
    page = open_page(MOBILE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.goto("/signin")
    assert scroll_width(page) <= WIDTH, "the sign-in page scrolls sideways"
    shots(page, "sign-in")
    sign_in(page, f"{unique('phone')}@example.com")
    expect(page.locator('[data-testid="pack-card"]')).to_have_count(4)
    assert scroll_width(page) <= WIDTH, "/buy-tokens scrolls sideways at 375 px"
    first = buy_button(pack_card(page, "starter"))
    expect(first).to_be_visible()
    expect(first).to_be_in_viewport()
    for pack in ("starter", "popular", "pro", "creator"):
        button = buy_button(pack_card(page, pack))
        button.scroll_into_view_if_needed()
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (pack, box)
        assert box["height"] >= 24, f"{pack}: Buy is {box['height']}px tall, too small to tap"
    page.evaluate("window.scrollTo(0, 0)")
    shots(page, "packs")

    buy_popular_hosted(page, shots)
    assert scroll_width(page) <= WIDTH, "the success page scrolls sideways at 375 px"
    page.goto("/tokens/history")
    assert scroll_width(page) <= WIDTH, "/tokens/history scrolls sideways at 375 px"
    shots(page, "history")


def test_the_keyboard_reaches_buy_with_a_visible_focus_and_starts_checkout(
    open_page: PageFactory, shots: Shots
) -> None:
    page = open_page()
    sign_in(page, f"{unique('keys')}@example.com")
    page.locator("body").click(position={"x": 1, "y": 1})
    focused: dict[str, Any] | None = None
    seen: list[str] = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        seen.append(f"{focused['tag']}:{focused['label'] or focused['text']}"[:40])
        if focused["tag"] == "button" and (focused["label"] or focused["text"]) == "Buy":
            break
    else:
        raise AssertionError(f"Tab never reached a Buy button; focus went through {seen}")
    assert focused is not None
    shots(page, "buy-focused")
    assert focused["focusVisible"], focused
    outline = focused["outlineStyle"] != "none" and focused["outlineWidth"] != "0px"
    assert outline or focused["boxShadow"] != "none", f"no visible focus indicator: {focused}"

    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlparse(url).path.startswith("/sandbox/checkout/"))
    expect(page.get_by_label("Card number")).to_be_visible()
    shots(page, "checkout-by-keyboard")


PAGE_WEIGHT_LIMIT = 100 * 1024  # the budget for /buy-tokens without Stripe.js


def test_buy_tokens_weighs_under_100_kb(open_page: PageFactory, shots: Shots) -> None:
    """Everything the page loads (HTML, CSS, scripts, icons), as bytes of response bodies."""
    page = open_page()
    sign_in(page, f"{unique('weight')}@example.com")
    # Nothing from the cache, so every resource of a first visit shows up.
    page.context.new_cdp_session(page).send("Network.setCacheDisabled", {"cacheDisabled": True})
    responses: list[Response] = []

    def record(response: Response) -> None:
        responses.append(response)

    page.on("response", record)
    page.reload(wait_until="networkidle")
    # The bytes of each resource the page loaded, fetched again with the page's cookies.
    sizes = {url: len(page.request.get(url).body()) for url in {r.url for r in responses}}
    shots(page, "packs")
    assert any(urlparse(url).path == "/buy-tokens" for url in sizes), sizes
    assert any(url.endswith(".css") for url in sizes), sizes
    assert all(urlparse(url).hostname == "127.0.0.1" for url in sizes), "a resource left the app"
    total = sum(sizes.values())
    print(f"/buy-tokens page weight: {total} bytes over {len(sizes)} resources")
    assert total < PAGE_WEIGHT_LIMIT, sorted(sizes.items(), key=lambda item: -item[1])
