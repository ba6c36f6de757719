"""Pages under attack: forged writes (CSRF), open redirects, cookie flags, security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.auth import dev_user_id
from tests.support.firebase_auth_emulator import DEFAULT_PROJECT, FirebaseAuthEmulator
from tests.support.firebase_tokens import emulator_id_token
from tests.support.pages_site import Site, Visitor, text

BAD_TOKENS = [None, "not-the-token"]  # missing, and present but wrong
AUTH_PROJECT = DEFAULT_PROJECT  # the Firebase Auth emulator's


def with_token(form: dict[str, str], token: str | None) -> dict[str, str]:
    return form if token is None else {**form, "csrf_token": token}


# -- CSRF: every cookie-authenticated write refuses a missing or wrong token -------------------


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_sign_in_form_without_its_token_signs_nobody_in(site: Site, token: str | None) -> None:
    visitor = site.visitor()
    visitor.csrf()  # the visitor has a session with a token, but does not send it
    form = with_token({"email": "mallory@example.com", "next": "/"}, token)
    response = visitor.post("/signin", data=form)
    assert response.status_code == 400
    assert not visitor.signed_in()
    assert site.services.store.get_user(dev_user_id("mallory@example.com")) is None


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_tip_form_without_its_token_moves_nothing(
    site: Site, alice: Visitor, bob: Visitor, token: str | None
) -> None:
    form = with_token({"recipient": "bob", "amount": "30", "idempotency_key": "k1"}, token)
    response = alice.post("/tokens/tip", data=form)
    assert response.status_code == 400
    assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (100, 0)
    assert (site.entry_count(alice.user_id), site.entry_count(bob.user_id)) == (1, 0)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_checkout_form_without_its_token_starts_nothing(
    site: Site, alice: Visitor, token: str | None
) -> None:
    form = with_token({"package": "popular", "idempotency_key": "k1"}, token)
    response = alice.post("/buy-tokens/checkout", data=form)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert list(site.services.store.iter_purchases()) == []


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_transfer_api_without_the_header_moves_nothing(
    site: Site, alice: Visitor, bob: Visitor, token: str | None
) -> None:
    headers = {"Idempotency-Key": "k1"} | ({"X-CSRFToken": token} if token else {})
    response = alice.post(
        "/api/tokens/transfer", json={"recipient": "bob", "amount": 30}, headers=headers
    )
    assert (response.status_code, response.get_json()["code"]) == (400, "csrf_failed")
    assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (100, 0)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_logout_without_its_token_keeps_the_session(alice: Visitor, token: str | None) -> None:
    response = alice.post("/auth/logout", data=with_token({}, token))
    assert response.status_code == 400
    assert alice.signed_in()


def test_logout_form_with_its_token_signs_out_and_goes_to_sign_in(alice: Visitor) -> None:
    response = alice.post("/auth/logout", data={"csrf_token": alice.csrf("/buy-tokens")})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/signin")
    assert not alice.signed_in()


@pytest.fixture
def firebase_site(tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator) -> Iterator[Site]:
    # firebase-admin checks revocation against the user record: the users must exist.
    for uid in ("uid-eve", "uid-fay", "uid-ops"):
        firebase_auth_emulator.create_user(uid, f"{uid}@example.com")
    site = Site(tmp_path, FIREBASE_PROJECT_ID=AUTH_PROJECT)
    yield site
    site.close()


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_firebase_session_exchange_needs_the_page_token(
    firebase_site: Site, token: str | None
) -> None:
    visitor = firebase_site.visitor()
    visitor.csrf()
    id_token = emulator_id_token(AUTH_PROJECT, "uid-eve", "eve@example.com")
    headers = {"X-CSRFToken": token} if token else {}
    response = visitor.post("/auth/session", json={"id_token": id_token}, headers=headers)
    assert (response.status_code, response.get_json()["code"]) == (400, "csrf_failed")
    assert not visitor.signed_in()
    assert firebase_site.services.store.get_user("uid-eve") is None


def test_firebase_session_exchange_with_the_token_signs_in(firebase_site: Site) -> None:
    visitor = firebase_site.visitor()
    headers = {"X-CSRFToken": visitor.csrf()}
    id_token = emulator_id_token(AUTH_PROJECT, "uid-fay", "fay@example.com")
    response = visitor.post("/auth/session", json={"id_token": id_token}, headers=headers)
    assert response.status_code == 200
    assert visitor.get("/auth/me").get_json()["user"]["id"] == "uid-fay"


@pytest.mark.parametrize(("custom", "status"), [({"admin": True}, 200), (None, 403)])
def test_the_admin_claim_of_the_sign_in_token_rides_in_the_session(
    firebase_site: Site, custom: dict[str, object] | None, status: int
) -> None:
    visitor = firebase_site.visitor()
    headers = {"X-CSRFToken": visitor.csrf()}
    id_token = emulator_id_token(AUTH_PROJECT, "uid-ops", "ops@example.com", custom)
    signed_in = visitor.post("/auth/session", json={"id_token": id_token}, headers=headers)
    assert signed_in.status_code == 200
    assert visitor.get("/admin").status_code == status


def test_firebase_session_exchange_refuses_a_bad_id_token(firebase_site: Site) -> None:
    visitor = firebase_site.visitor()
    headers = {"X-CSRFToken": visitor.csrf()}
    response = visitor.post("/auth/session", json={"id_token": "garbage"}, headers=headers)
    assert (response.status_code, response.get_json()["code"]) == (401, "not_signed_in")
    assert not visitor.signed_in()


# -- redirects after sign-in stay on this site --------------------------------------------------

HOSTILE_NEXT = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "/\t/evil.example",
]


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_sign_in_refuses_to_send_people_to_other_sites(site: Site, next_path: str) -> None:
    visitor = site.visitor()
    page = text(visitor.get("/signin", query_string={"next": next_path}))
    assert 'name="next" value="/buy-tokens"' in page
    response = visitor.sign_in("carol@example.com", next_path=next_path)
    assert response.headers["Location"] == "/buy-tokens"


def test_sign_in_returns_to_a_same_site_path_with_its_query(site: Site) -> None:
    response = site.visitor().sign_in("dan@example.com", next_path="/tokens/history?type=grant")
    assert response.headers["Location"] == "/tokens/history?type=grant"


# -- the session cookie ------------------------------------------------------------------------


def session_cookie(visitor: Visitor) -> str:
    # Over https Flask-WTF also wants a same-site Referer, as browsers send.
    response = visitor.post(
        "/signin",
        data={"csrf_token": visitor.csrf(), "email": "erin@example.com"},
        headers={"Referer": f"{visitor.base_url}/signin"},
    )
    assert response.status_code == 303, text(response)
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1
    return cookies[0]


def test_session_cookie_is_http_only_lax_and_lasts_a_week(site: Site) -> None:
    cookie = session_cookie(site.visitor())
    assert "; HttpOnly" in cookie
    assert "; SameSite=Lax" in cookie
    assert "; Secure" not in cookie  # served over http in development
    assert "Expires=" in cookie


def test_session_cookie_is_secure_when_served_over_https(tmp_path: Path) -> None:
    site = Site(tmp_path, APP_BASE_URL="https://tokens.example")
    try:
        cookie = session_cookie(site.visitor("https://tokens.example"))
        assert "; Secure" in cookie
        assert "; HttpOnly" in cookie
    finally:
        site.close()


# -- security headers --------------------------------------------------------------------------

PAGES = [
    "/",
    "/signin",
    "/buy-tokens",
    "/tokens/history",
    "/token-purchase-cancel",
    "/token-purchase-success?session_id=cs_missing",
    "/sandbox/dashboard",
    "/api/tokens/packages",
    "/api/tokens/balance",
    "/healthz",
    "/static/app.css",
    "/no-such-page",
]


def headers_of(visitor: Visitor, path: str) -> dict[str, str]:
    response = visitor.get(path)
    response.close()  # static files are streamed from an open file
    return dict(response.headers)


def assert_common_headers(headers: dict[str, str]) -> str:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "style-src 'self';" in csp  # no inline styles
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    return csp


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(alice: Visitor, path: str) -> None:
    headers = headers_of(alice, path)
    csp = assert_common_headers(headers)
    assert "script-src 'self';" in csp  # sandbox mode: nothing third-party at all
    assert "https://" not in csp
    assert "Strict-Transport-Security" not in headers  # development over http


@pytest.mark.parametrize("path", ["/", "/signin", "/buy-tokens", "/api/tokens/packages"])
def test_signed_out_responses_carry_them_too(site: Site, path: str) -> None:
    assert_common_headers(headers_of(site.visitor(), path))


PRODUCTION_ENV = {
    "APP_BASE_URL": "https://tokens.example",
    "STRIPE_SECRET_KEY": "sk_test_pages",
    "STRIPE_WEBHOOK_SECRET": "whsec_pages",
    "STRIPE_API_BASE": "http://127.0.0.1:9",  # never called by these tests
    "STRIPE_PUBLISHABLE_KEY": "pk_test_pages",
    "FIREBASE_PROJECT_ID": "demo-pages",
    "FIREBASE_WEB_API_KEY": "web-key",
}


@pytest.fixture
def production_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    # Signing in below uses emulator-style tokens; the variable is what the page must not leak.
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    site = Site(tmp_path, **PRODUCTION_ENV)
    yield site
    site.close()


def policy(csp: str) -> dict[str, set[str]]:
    """A Content-Security-Policy header as directive -> set of sources."""
    directives = (part.split() for part in csp.split(";") if part.strip())
    return {name: set(sources) for name, *sources in directives}


# What every response allows: this site only, nothing framed, nothing framing it.
SELF_ONLY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "font-src": {"'self'"},
    "connect-src": {"'self'"},
    "frame-src": {"'none'"},
    "frame-ancestors": {"'none'"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
}
STRIPE_JS = {"https://js.stripe.com", "https://*.js.stripe.com"}
# /buy-tokens runs Stripe.js (Payment Element, 3-D Secure frames) and nothing from Google.
BUY_PAGE = SELF_ONLY | {
    "script-src": {"'self'", *STRIPE_JS},
    "frame-src": {*STRIPE_JS, "https://hooks.stripe.com"},
    "connect-src": {"'self'", "https://api.stripe.com"},
}
# /signin runs the Firebase JS SDK served by this site: it calls Firebase's two APIs and,
# for Google's popup only, loads Google's iframe helper; nothing from Stripe, no SDK CDN.
FIREBASE_APIS = {"https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"}
SIGNIN_PAGE = SELF_ONLY | {
    "script-src": {"'self'", "https://apis.google.com"},
    "frame-src": {"https://demo-pages.firebaseapp.com"},
    "connect-src": {"'self'", *FIREBASE_APIS},
}
SELF_ONLY_PAGES = [
    "/",
    "/tokens/history",
    "/token-purchase-cancel",
    "/token-purchase-success?session_id=cs_missing",
    "/api/tokens/packages",
    "/api/tokens/balance",
    "/auth/me",
    "/static/app.css",
    "/static/js/signin-firebase.js",
    "/no-such-page",
]


def test_each_app_keeps_its_own_page_policies(tmp_path: Path, production_site: Site) -> None:
    """Apps built one after another in a process (as the tests do) share view functions;
    the Firebase app's /signin policy must not carry over to the sandbox app's."""
    firebase = headers_of(production_site.visitor("https://tokens.example"), "/signin")
    assert "apis.google.com" in firebase["Content-Security-Policy"]
    (tmp_path / "sandbox").mkdir()
    sandbox = Site(tmp_path / "sandbox")
    try:
        headers = headers_of(sandbox.visitor(), "/signin")
        assert policy(headers["Content-Security-Policy"]) == SELF_ONLY
    finally:
        sandbox.close()


@pytest.fixture
def emulator_site(tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator) -> Iterator[Site]:
    """The production-like site signing in against the Firebase Auth emulator (which the
    fixture has put in FIREBASE_AUTH_EMULATOR_HOST)."""
    site = Site(
        tmp_path, **(PRODUCTION_ENV | {"FIREBASE_PROJECT_ID": firebase_auth_emulator.project_id})
    )
    yield site
    site.close()


@pytest.fixture
def production_visitor(
    emulator_site: Site, firebase_auth_emulator: FirebaseAuthEmulator
) -> Visitor:
    """Signed in through /auth/session with an ID token the emulator issued at sign-up."""
    _, token = firebase_auth_emulator.sign_up("pat@example.com", "pat-password")
    visitor = emulator_site.visitor("https://tokens.example")
    headers = {"X-CSRFToken": visitor.csrf(), "Referer": "https://tokens.example/signin"}
    response = visitor.post("/auth/session", json={"id_token": token}, headers=headers)
    assert response.status_code == 200, text(response)
    return visitor


def test_production_buy_page_allows_stripe_and_nothing_from_google(
    production_visitor: Visitor,
) -> None:
    response = production_visitor.get("/buy-tokens")
    assert response.status_code == 200
    assert 'src="https://js.stripe.com/v3/"' in text(response)
    assert policy(assert_common_headers(dict(response.headers))) == BUY_PAGE


@pytest.mark.parametrize("path", ["/signin", "/signin?next=/buy-tokens"])
def test_production_sign_in_page_allows_firebase_and_nothing_from_stripe(
    production_site: Site, path: str
) -> None:
    headers = headers_of(production_site.visitor("https://tokens.example"), path)
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert policy(assert_common_headers(headers)) == SIGNIN_PAGE


@pytest.mark.parametrize("path", SELF_ONLY_PAGES)
def test_production_pages_without_third_party_scripts_allow_only_this_site(
    production_visitor: Visitor, path: str
) -> None:
    """Also with the Auth emulator configured: only /signin may talk to it."""
    headers = headers_of(production_visitor, path)
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert policy(assert_common_headers(headers)) == SELF_ONLY


def test_no_page_allows_the_sdk_cdn(production_visitor: Visitor) -> None:
    for path in ["/signin", "/buy-tokens", *SELF_ONLY_PAGES]:
        csp = headers_of(production_visitor, path)["Content-Security-Policy"]
        assert "gstatic.com" not in csp, path
        assert "www.googleapis.com" not in csp, path


def static_text(visitor: Visitor, path: str) -> tuple[str, str]:
    """A static file's mimetype and text (closed: static files stream from an open file)."""
    response = visitor.get(path)
    try:
        assert response.status_code == 200, path
        return response.mimetype or "", text(response)
    finally:
        response.close()


def test_the_sign_in_page_runs_the_sdk_this_site_serves(production_site: Site) -> None:
    visitor = production_site.visitor("https://tokens.example")
    page = text(visitor.get("/signin"))
    assert 'src="/static/js/signin-firebase.js"' in page
    assert "data-auth-emulator" not in page
    _, script = static_text(visitor, "/static/js/signin-firebase.js")
    assert re.findall(r'from\s+"([^"]+)"', script) == ["../vendor/firebase.js"]
    mimetype, sdk = static_text(visitor, "/static/vendor/firebase.js")
    assert mimetype == "text/javascript"
    assert sdk.startswith("/*! Firebase JS SDK 12.")


def test_a_sandbox_sign_in_page_is_self_only(site: Site) -> None:
    headers = headers_of(site.visitor(), "/signin")
    assert policy(assert_common_headers(headers)) == SELF_ONLY


def test_with_the_auth_emulator_the_sign_in_page_talks_to_it(
    emulator_site: Site, firebase_auth_emulator: FirebaseAuthEmulator
) -> None:
    response = emulator_site.visitor("https://tokens.example").get("/signin")
    emulator = firebase_auth_emulator.url
    assert f'data-auth-emulator="{emulator}"' in text(response)
    domain = f"https://{firebase_auth_emulator.project_id}.firebaseapp.com"
    assert policy(response.headers["Content-Security-Policy"]) == SIGNIN_PAGE | {
        "frame-src": {domain, emulator},
        "connect-src": SIGNIN_PAGE["connect-src"] | {emulator},
    }


def test_production_sign_in_uses_firebase_not_the_development_form(production_site: Site) -> None:
    visitor = production_site.visitor("https://tokens.example")
    page = text(visitor.get("/signin"))
    assert 'id="firebase-signin"' in page
    assert "Development sign-in" not in page
    assert visitor.post("/signin", data={"email": "x@example.com"}).status_code == 404


def test_production_redirects_plain_http_but_not_the_probes(production_site: Site) -> None:
    visitor = production_site.visitor("http://tokens.example")
    response = visitor.get("/buy-tokens")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://tokens.example/buy-tokens")
    assert visitor.get("/healthz").status_code == 200
