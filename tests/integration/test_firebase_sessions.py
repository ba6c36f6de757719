"""Sign-in against the real Firebase Auth emulator: operator rights by verified email,
and sessions the server ends (sign-out, disabled or revoked users, lifetime).

The app runs in its Firebase sign-in mode (FIREBASE_PROJECT_ID set, emulator host
set: production refuses that host, so APP_ENV stays development). Time moves by
a hand-set clock in the services, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.clock import Clock
from tests.support.firebase_auth_emulator import FirebaseAuthEmulator
from tests.support.pages_site import Site, Visitor

OPERATOR = "ops@example.com"
PASSWORD = "secret-pass-1"
GRANT_CHECK = "/admin/api/purchases/pur_missing"  # any operator JSON route
RECHECK_S = 300  # the default SESSION_RECHECK_SECONDS, stated in the README


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def firebase_site(
    tmp_path: Path, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> Iterator[Site]:
    site = Site(
        tmp_path,
        FIREBASE_PROJECT_ID=firebase_auth_emulator.project_id,
        OPERATOR_EMAILS=OPERATOR,
    )
    site.services.auth.clock = clock
    site.services.sessions.clock = clock
    yield site
    site.close()


def firebase_sign_in(site: Site, id_token: str) -> Visitor:
    visitor = site.visitor()
    headers = {"X-CSRFToken": visitor.csrf(), "Referer": "http://localhost/signin"}
    response = visitor.post("/auth/session", json={"id_token": id_token}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    visitor.user_id = response.get_json()["user"]["id"]
    return visitor


def status(visitor: Visitor, path: str = "/auth/me") -> int:
    return visitor.get(path).status_code


def test_an_unverified_operator_address_is_refused_until_verified(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator
) -> None:
    uid, token = firebase_auth_emulator.sign_up(OPERATOR, PASSWORD)
    visitor = firebase_sign_in(firebase_site, token)
    assert status(visitor, GRANT_CHECK) == 403
    assert status(visitor, "/admin") == 403
    # The unverified address is not kept as the user's email either.
    assert firebase_site.services.store.get_user(uid).email is None  # type: ignore[union-attr]

    firebase_auth_emulator.verify_email(OPERATOR)
    verified = firebase_sign_in(firebase_site, firebase_auth_emulator.sign_in(OPERATOR, PASSWORD))
    assert status(verified, "/admin") == 200
    assert status(verified, GRANT_CHECK) == 404  # past the operator check: no such purchase
    assert firebase_site.services.store.get_user(uid).email == OPERATOR  # type: ignore[union-attr]


def test_a_disabled_user_is_refused_within_the_recheck_interval(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> None:
    uid, token = firebase_auth_emulator.sign_up("dana@example.com", PASSWORD)
    visitor = firebase_sign_in(firebase_site, token)
    assert status(visitor) == 200
    firebase_auth_emulator.disable(uid)
    clock.advance(RECHECK_S)
    assert status(visitor) == 401
    clock.advance(1)  # the session is gone, not only refused once
    assert status(visitor) == 401


def test_revoked_tokens_end_the_session_within_the_recheck_interval(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> None:
    uid, token = firebase_auth_emulator.sign_up("rev@example.com", PASSWORD)
    visitor = firebase_sign_in(firebase_site, token)
    firebase_auth_emulator.revoke(uid)
    clock.advance(RECHECK_S)
    assert status(visitor) == 401


def test_a_revoked_token_cannot_start_a_session(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator
) -> None:
    uid, token = firebase_auth_emulator.sign_up("old@example.com", PASSWORD)
    firebase_auth_emulator.revoke(uid)
    visitor = firebase_site.visitor()
    headers = {"X-CSRFToken": visitor.csrf(), "Referer": "http://localhost/signin"}
    response = visitor.post("/auth/session", json={"id_token": token}, headers=headers)
    assert response.status_code == 401


def test_a_removed_admin_claim_takes_effect_within_the_recheck_interval(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> None:
    uid, _ = firebase_auth_emulator.sign_up("claim@example.com", PASSWORD)
    firebase_auth_emulator.set_claims(uid, {"admin": True})
    visitor = firebase_sign_in(
        firebase_site, firebase_auth_emulator.sign_in("claim@example.com", PASSWORD)
    )
    assert status(visitor, "/admin") == 200
    firebase_auth_emulator.set_claims(uid, {})
    clock.advance(RECHECK_S)
    assert status(visitor, "/admin") == 403
    assert status(visitor) == 200


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator
) -> None:
    _, token = firebase_auth_emulator.sign_up("out@example.com", PASSWORD)
    visitor = firebase_sign_in(firebase_site, token)
    saved = visitor.client.get_cookie("session")
    assert saved is not None
    csrf = visitor.get("/auth/csrf").get_json()["csrf_token"]
    assert visitor.post("/auth/logout", headers={"X-CSRFToken": csrf}).status_code == 200
    visitor.client.set_cookie("session", saved.value, domain=saved.domain)
    assert status(visitor) == 401


def test_a_session_ends_at_its_absolute_lifetime_however_much_it_is_used(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> None:
    lifetime = firebase_site.services.settings.sessions.lifetime_s
    _, token = firebase_auth_emulator.sign_up("busy@example.com", PASSWORD)
    visitor = firebase_sign_in(firebase_site, token)
    used_until = clock.now + timedelta(seconds=lifetime)
    while clock.advance(RECHECK_S - 1) < used_until:
        assert status(visitor) == 200
    assert status(visitor) == 401


def test_only_a_recent_sign_in_is_exchanged_for_a_session(
    firebase_site: Site, firebase_auth_emulator: FirebaseAuthEmulator, clock: Clock
) -> None:
    _, token = firebase_auth_emulator.sign_up("stale@example.com", PASSWORD)
    clock.advance(6 * 60)  # the token is still valid for an hour; the sign-in is 6 min old
    visitor = firebase_site.visitor()
    headers = {"X-CSRFToken": visitor.csrf(), "Referer": "http://localhost/signin"}
    response = visitor.post("/auth/session", json={"id_token": token}, headers=headers)
    assert response.status_code == 401
    assert "recent" in response.get_json()["error"]


def test_dev_sign_out_ends_every_copy_of_the_cookie(site: Site) -> None:
    visitor = site.signed_in("dev@example.com", "devuser")
    saved = visitor.client.get_cookie("session")
    assert saved is not None
    csrf = visitor.get("/auth/csrf").get_json()["csrf_token"]
    assert visitor.post("/auth/logout", headers={"X-CSRFToken": csrf}).status_code == 200
    visitor.client.set_cookie("session", saved.value, domain=saved.domain)
    assert status(visitor) == 401
    assert status(visitor, "/api/tokens/balance") == 401
