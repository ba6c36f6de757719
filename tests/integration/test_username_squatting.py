"""Sandbox dev sign-in: a username cannot pose as a user id, so tips by id reach that user."""

from __future__ import annotations

import pytest

from services.auth import dev_user_id
from tests.support.pages_site import Site, Visitor


def dev_login(site: Site, email: str, username: str) -> tuple[int, str]:
    response = site.visitor().post("/auth/dev-login", json={"email": email, "username": username})
    return response.status_code, str((response.get_json() or {}).get("error", ""))


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_a_username_equal_to_another_users_id_is_refused(
    site: Site, bob: Visitor, case: object
) -> None:
    assert callable(case)
    status, error = dev_login(site, "mallory@example.com", case(bob.user_id))
    assert status == 400
    assert "user id" in error


@pytest.mark.parametrize(
    "username",
    [
        dev_user_id("nobody-yet@example.com"),  # a dev id before its owner signs in
        "dev-0123456789abcdef0123",
        "Ab3dEf6hIj9kLm2nOp5qRs8tUv1w",  # the shape of a Firebase uid (28 letters and digits)
    ],
)
def test_usernames_shaped_like_user_ids_are_refused(site: Site, username: str) -> None:
    assert dev_login(site, "mallory@example.com", username)[0] == 400


def test_a_tip_by_user_id_reaches_that_user(site: Site, alice: Visitor, bob: Visitor) -> None:
    dev_login(site, "mallory@example.com", bob.user_id)  # refused above
    headers = {"X-CSRFToken": alice.csrf(), "Idempotency-Key": "tip-by-id"}
    response = alice.post(
        "/api/tokens/transfer", json={"recipient": bob.user_id, "amount": 5}, headers=headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert site.balance(bob.user_id) == 5


@pytest.mark.parametrize("username", ["dev", "developer", "devon-smith", "alice_1990"])
def test_ordinary_usernames_are_still_accepted(site: Site, username: str) -> None:
    assert dev_login(site, f"{username}@example.com", username)[0] == 200
