"""Real Chromium (Debian's, never a downloaded one) against the app under gunicorn in sandbox mode.

One browser and one app for this package of tests; every test gets fresh browser contexts,
its own users, and ``build/browser/<test>/`` for numbered screenshots of each
step. A failed test also keeps the HTML of every page it had open and the
app's log there.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect, sync_playwright

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    OUTPUT_ROOT,
    PageFactory,
    Shots,
    directory_name,
)
from tests.support.server import AppServer

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
SANDBOX_ENV = {
    # Sandbox payments and the development sign-in, whatever the calling shell has set.
    "APP_ENV": "development",
    "STRIPE_SECRET_KEY": "",
    "STRIPE_API_BASE": "",
    "FIREBASE_PROJECT_ID": "",
    "TOKEN_CATALOG_FILE": "",
    "SIGNUP_BONUS": "0",
}

expect.set_options(timeout=10_000)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report so fixtures can tell, at teardown, whether the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def failed(node: pytest.Item) -> bool:
    reports = node.stash.get(REPORTS, {})
    return any(report.failed for report in reports.values())


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium "
            "(make test installs it through ops/setup-test-machine; or apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def app() -> Iterator[AppServer]:
    try:
        server = AppServer(SANDBOX_ENV).start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the app: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(OUTPUT_ROOT / directory_name(request.node.name))


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, browser: Browser, app: AppServer, shots: Shots
) -> Iterator[PageFactory]:
    """Pages in fresh contexts (separate cookie jars); on failure keeps each page's HTML."""
    opened: list[tuple[BrowserContext, Page]] = []

    def factory(viewport: ViewportSize = DESKTOP, **options: Any) -> Page:
        context = browser.new_context(base_url=app.url, viewport=viewport, **options)
        context.set_default_timeout(10_000)
        page = context.new_page()
        opened.append((context, page))
        return page

    yield factory
    if failed(request.node):
        for number, (_, page) in enumerate(opened, start=1):
            if not page.is_closed():
                shots.keep_failure(page, f"page-{number}")
        (shots.directory / "app.log").write_text(app.output(), encoding="utf-8")
    for context, _ in opened:
        context.close()


@pytest.fixture
def page(open_page: PageFactory) -> Page:
    """A desktop-sized page (1280x900)."""
    return open_page()
