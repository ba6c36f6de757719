"""The Auth-emulator fixture does what the sign-in tests rely on."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.firebase_auth_emulator import FirebaseAuthEmulator, FirebaseAuthEmulatorError


def claims_of(id_token: str) -> dict[str, object]:
    payload = id_token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return data


def test_sign_up_is_unverified_until_the_email_is_verified(
    firebase_auth_emulator: FirebaseAuthEmulator,
) -> None:
    uid, token = firebase_auth_emulator.sign_up("new@example.com", "secret-pass")
    claims = claims_of(token)
    assert (claims["user_id"], claims["email_verified"]) == (uid, False)
    assert claims["aud"] == firebase_auth_emulator.project_id

    firebase_auth_emulator.verify_email("new@example.com")
    fresh = claims_of(firebase_auth_emulator.sign_in("new@example.com", "secret-pass"))
    assert fresh["email_verified"] is True


def test_claims_disable_revoke_and_clear(firebase_auth_emulator: FirebaseAuthEmulator) -> None:
    uid, _ = firebase_auth_emulator.sign_up("ops@example.com", "secret-pass")
    firebase_auth_emulator.set_claims(uid, {"admin": True})
    assert claims_of(firebase_auth_emulator.sign_in("ops@example.com", "secret-pass"))["admin"]

    firebase_auth_emulator.revoke(uid)
    assert int(firebase_auth_emulator.user(uid)["validSince"]) > 0
    firebase_auth_emulator.disable(uid)
    assert firebase_auth_emulator.user(uid)["disabled"] is True
    with pytest.raises(FirebaseAuthEmulatorError, match="USER_DISABLED"):
        firebase_auth_emulator.sign_in("ops@example.com", "secret-pass")

    firebase_auth_emulator.clear()
    with pytest.raises(FirebaseAuthEmulatorError, match="no user"):
        firebase_auth_emulator.user(uid)
