"""A signed-in session as the store keeps it: the server's word on whether a cookie counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SessionRecord:
    id: str  # SHA-256 of the cookie's random secret: a store leak is not a live cookie
    user_id: str
    source: str  # "firebase" or "dev" (sandbox sign-in)
    created_at: str
    expires_at: str  # absolute: created_at + SESSION_LIFETIME_HOURS, never extended
    checked_at: str  # when Firebase last said the user is enabled and not revoked
    signed_in_at: int = 0  # the ID token's auth_time (epoch seconds); revocation compares it
    admin_claim: bool = False  # Firebase custom claim admin=true, as of checked_at
    operator_email: str | None = None  # a verified address (or the sandbox's dev sign-in)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRecord:
        return cls(
            id=str(data["id"]),
            user_id=str(data["user_id"]),
            source=str(data["source"]),
            created_at=str(data["created_at"]),
            expires_at=str(data["expires_at"]),
            checked_at=str(data["checked_at"]),
            signed_in_at=int(data.get("signed_in_at") or 0),
            admin_claim=data.get("admin_claim") is True,
            operator_email=data.get("operator_email"),
        )
