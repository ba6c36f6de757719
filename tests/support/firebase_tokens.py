"""ID tokens in the shape the Firebase Auth emulator issues: unsigned JWTs.

firebase-admin accepts them only while FIREBASE_AUTH_EMULATOR_HOST is set,
which is how tests sign in without a Google account.
"""

from __future__ import annotations

import base64
import json
import time


def _part(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def emulator_id_token(
    project_id: str, uid: str, email: str | None = None, custom: dict[str, object] | None = None
) -> str:
    """``custom``: custom claims, as the Admin SDK's set_custom_user_claims adds them."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": f"https://securetoken.google.com/{project_id}",
        "aud": project_id,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"identities": {}, "sign_in_provider": "password"},
    }
    if email:
        claims["email"] = email
    claims.update(custom or {})
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."
