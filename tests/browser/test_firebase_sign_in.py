"""The production sign-in, run for real: Chromium, /signin and the Firebase JS SDK this site
serves, against the Firebase Auth emulator (firebase-tools); the app under gunicorn verifies
the emulator's ID tokens with firebase-admin and signs the visitor in.

The app runs as in production (Stripe payments, Firebase sign-in, no development form),
told to use the emulator through FIREBASE_AUTH_EMULATOR_HOST as firebase-admin is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, Request, expect

from tests.browser.support import DEV_FORM, Shots, expect_header_balance, path_is, unique
from tests.browser.test_accessibility import blocking_violations
from tests.support.firebase_auth_emulator import API_KEY, FirebaseAuthEmulator
from tests.support.server import AppServer

PASSWORD = "correct horse battery"
NO_MATCH = "That email and password don't match an account."


@pytest.fixture(scope="module")
def app(firebase_auth_emulator_process: FirebaseAuthEmulator) -> Iterator[AppServer]:
    """This module's app: Firebase sign-in mode, against the emulator (overrides conftest's)."""
    emulator = firebase_auth_emulator_process
    env = {
        "APP_ENV": "development",  # production refuses the emulator, rightly
        "STRIPE_SECRET_KEY": "sk_test_browser_firebase",
        "STRIPE_WEBHOOK_SECRET": "whsec_browser_firebase_sign_in",
        "STRIPE_API_BASE": "http://127.0.0.1:9",  # signing in never calls Stripe
        "STRIPE_PUBLISHABLE_KEY": "pk_test_browser_firebase",
        "FIREBASE_PROJECT_ID": emulator.project_id,
        "FIREBASE_WEB_API_KEY": API_KEY,
        "FIREBASE_AUTH_EMULATOR_HOST": emulator.host,
        "TOKEN_CATALOG_FILE": "",
        "SIGNUP_BONUS": "0",
    }
    try:
        server = AppServer(env).start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the app: {exc}", pytrace=False)
    yield server
    server.stop()


class Watch:
    """What the page did: the origins it asked, CSP refusals and uncaught errors."""

    def __init__(self, page: Page) -> None:
        self.origins: set[str] = set()
        self.csp_refusals: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # /buy-tokens loads Stripe.js in this mode; the test machine stays offline.
        page.route("https://js.stripe.com/**", lambda route: route.abort())

    def _request(self, request: Request) -> None:
        parsed = urlparse(request.url)
        if parsed.netloc != "js.stripe.com":
            self.origins.add(f"{parsed.scheme}://{parsed.netloc}")

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_refusals.append(message.text)


def email_form(page: Page) -> Locator:
    return page.get_by_role("form", name="Sign in with email")


def submit(page: Page, email: str, password: str, action: str) -> None:
    """Type into the Firebase form and press ``action`` ("Sign in" or "Create account")."""
    form = email_form(page)
    button = form.get_by_role("button", name=action, exact=True)
    expect(button).to_be_enabled()  # the SDK module loaded and enabled the form
    form.get_by_label("Email", exact=True).fill(email)
    form.get_by_label("Password", exact=True).fill(password)
    button.click()


def token_uid(id_token: str) -> str:
    """The user id in an emulator ID token (unsigned, so its payload is plain base64)."""
    payload = id_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["user_id"])


def expect_signed_in_header(page: Page) -> None:
    """The page knows the visitor: balance and Sign out (the name shown depends on
    whether Firebase has verified the address, so it is not checked here)."""
    expect_header_balance(page, 0)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in")).to_have_count(0)


def me_status(page: Page, app: AppServer) -> int:
    return page.request.get(f"{app.url}/auth/me").status


def signed_in_user(page: Page, app: AppServer) -> str:
    response = page.request.get(f"{app.url}/auth/me")
    assert response.ok, f"/auth/me: {response.status} {response.text()}"
    return str(response.json()["user"]["id"])


def test_sign_up_sign_out_and_sign_in_again_with_email_and_password(
    page: Page, app: AppServer, firebase_auth_emulator: FirebaseAuthEmulator, shots: Shots
) -> None:
    watch = Watch(page)
    email = f"{unique('fb')}@example.com"
    page.goto("/buy-tokens")
    page.wait_for_url(path_is("/signin"))
    expect(page.get_by_role("form", name=DEV_FORM)).to_have_count(0)
    shots(page, "firebase-sign-in")

    submit(page, email, PASSWORD, "Create account")
    page.wait_for_url(path_is("/buy-tokens"))
    uid = token_uid(firebase_auth_emulator.sign_in(email, PASSWORD))
    assert signed_in_user(page, app) == uid  # the emulator's account, verified by the app
    expect_signed_in_header(page)
    shots(page, "signed-up")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(path_is("/signin"))
    expect(page.get_by_role("status")).to_have_text("You're signed out.")
    assert me_status(page, app) == 401
    page.goto("/buy-tokens")
    page.wait_for_url(path_is("/signin"))

    submit(page, email, PASSWORD, "Sign in")
    page.wait_for_url(path_is("/buy-tokens"))
    assert signed_in_user(page, app) == uid
    expect_signed_in_header(page)
    shots(page, "signed-in-again")

    assert watch.csp_refusals == []
    assert watch.errors == []
    # The SDK came from this site and talked to the emulator only: no CDN, no Google.
    assert watch.origins == {app.url, firebase_auth_emulator.url}


def test_a_wrong_password_is_refused_and_signs_nobody_in(
    page: Page, app: AppServer, firebase_auth_emulator: FirebaseAuthEmulator, shots: Shots
) -> None:
    watch = Watch(page)
    email = f"{unique('fbwrong')}@example.com"
    firebase_auth_emulator.sign_up(email, PASSWORD)
    page.goto("/signin")
    submit(page, email, "not the password", "Sign in")
    expect(page.get_by_role("alert")).to_have_text(NO_MATCH)
    shots(page, "wrong-password")
    assert blocking_violations(page) == []  # the Firebase form, with its error showing
    assert path_is("/signin")(page.url)
    assert me_status(page, app) == 401
    expect(email_form(page).get_by_role("button", name="Sign in")).to_be_enabled()
    assert watch.csp_refusals == []
    assert watch.errors == []
