"""Who is calling: development sign-in (sandbox only) and Firebase ID tokens.

Either way the user and their token account exist after the first request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.errors import DomainError, NotSignedIn, StorageUnavailable
from services.ledger.model import TxnType, format_time, utc_now
from services.payments.model import User
from services.store.port import Store
from services.tokens import TokenLedger

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
CLOCK_SKEW_S = 60  # a sign-in a little "in the future" is this server's clock lagging
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,30}$")
# What user ids look like: dev sign-in's "dev-" + 20 hex digits, Firebase's 28 letters
# and digits. Tips find a recipient by username before user id, so a username in
# either shape could catch tips meant for the user who has (or will have) that id.
USER_ID_SHAPED = re.compile(r"^(dev-.*|[A-Za-z0-9]{28})$", re.IGNORECASE)


def dev_user_id(email: str) -> str:
    return "dev-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:20]


def check_email(email: object) -> str:
    if not isinstance(email, str) or not EMAIL.match(email.strip()):
        raise DomainError("a valid email address is required")
    return email.strip().lower()


def check_username(username: object) -> str | None:
    if username in (None, ""):
        return None
    if not isinstance(username, str) or not USERNAME.match(username):
        raise DomainError("a username is 3-30 letters, digits, '.', '_' or '-'")
    if USER_ID_SHAPED.match(username):
        raise DomainError("a username cannot look like a user id (dev-... or 28 letters/digits)")
    return username


@dataclass(frozen=True)
class BearerIdentity:
    user: User
    admin_claim: bool  # the Firebase custom claim admin=true, set with the Admin SDK
    # The token's email only when Firebase says it is verified (email_verified: true):
    # anyone can sign up with any address, so only this one may grant operator rights.
    verified_email: str | None = None
    signed_in_at: int = 0  # the token's auth_time, epoch seconds


@dataclass(frozen=True)
class FirebaseUser:
    """What a session re-check reads from Firebase's user record."""

    disabled: bool
    valid_after_s: int
    admin_claim: bool
    verified_email: str | None


def verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    if claims.get("email_verified") is True and isinstance(email, str) and email:
        return email.strip().lower()
    return None


class FirebaseVerifier:
    """Verifies Firebase ID tokens with firebase-admin.

    With FIREBASE_AUTH_EMULATOR_HOST set, the library accepts the emulator's
    unsigned tokens; that is how tests sign in without a Google account.
    """

    def __init__(self, project_id: str) -> None:
        import firebase_admin
        from firebase_admin import auth

        name = f"token-store-{project_id}"
        try:
            self._app = firebase_admin.get_app(name)
        except ValueError:
            self._app = firebase_admin.initialize_app(options={"projectId": project_id}, name=name)
        self._auth = auth

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; check_revoked also refuses disabled users and revoked tokens."""
        try:
            claims: dict[str, Any] = self._auth.verify_id_token(
                token, app=self._app, check_revoked=True
            )
        except (self._auth.RevokedIdTokenError, self._auth.UserDisabledError) as exc:
            raise NotSignedIn("this account was disabled or signed out everywhere") from exc
        except (ValueError, self._auth.InvalidIdTokenError) as exc:
            raise NotSignedIn("the sign-in token is not valid; sign in again") from exc
        except Exception as exc:  # certificate or user-record fetch: still not signed in
            raise NotSignedIn("the sign-in token could not be verified") from exc
        return claims

    def user_status(self, uid: str) -> FirebaseUser:
        """The user's record now (auth.get_user): a session's periodic re-check."""
        try:
            record = self._auth.get_user(uid, app=self._app)
        except self._auth.UserNotFoundError:
            return FirebaseUser(
                disabled=True, valid_after_s=0, admin_claim=False, verified_email=None
            )
        except Exception as exc:  # Firebase unreachable: refuse for now, let the client retry
            raise StorageUnavailable("cannot check the account with Firebase now") from exc
        claims = record.custom_claims or {}
        valid_after_ms = record.tokens_valid_after_timestamp or 0
        return FirebaseUser(
            disabled=bool(record.disabled),
            valid_after_s=(int(valid_after_ms) + 999) // 1000,
            admin_claim=claims.get("admin") is True,
            verified_email=verified_email(
                {"email": record.email, "email_verified": record.email_verified}
            ),
        )


class AuthService:
    def __init__(
        self,
        store: Store,
        verifier: FirebaseVerifier | None,
        ledger: TokenLedger,
        signup_bonus: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.ledger = ledger
        self.signup_bonus = signup_bonus
        self.clock = clock

    def _ensure(self, user: User) -> User:
        now = self.clock()
        stamp = format_time(now)
        stored = self.store.ensure_user(
            User(id=user.id, email=user.email, username=user.username, created_at=stamp), now
        )
        if self.signup_bonus and stored.created_at == stamp:  # created by this call
            self.ledger.credit(
                stored.id,
                self.signup_bonus,
                key=f"signup-bonus:{stored.id}",
                type=TxnType.GRANT,
                reason="Welcome bonus",
            )
        return stored

    def dev_login(self, email: object, username: object = None) -> User:
        address = check_email(email)
        user_id = dev_user_id(address)
        name = check_username(username)
        if name is not None and self._is_another_users_id(name, user_id):
            raise DomainError("a username cannot be another user's id")
        return self._ensure(User(id=user_id, email=address, username=name))

    def _is_another_users_id(self, name: str, own_id: str) -> bool:
        """Any other id format the store holds (ids compare exactly, usernames do not)."""
        return any(
            candidate != own_id and self.store.get_user(candidate) is not None
            for candidate in {name, name.lower()}
        )

    def verify_bearer(self, token: str) -> BearerIdentity:
        """The token's user, whether it carries the admin claim, and its verified email."""
        if self.verifier is None:
            raise NotSignedIn("bearer tokens need FIREBASE_PROJECT_ID to be configured")
        claims = self.verifier.verify(token)
        email = verified_email(claims)
        user = self._ensure(User(id=str(claims["uid"]), email=email))
        if email is not None and user.email != email:  # the address changed and was verified
            self.store.set_user_email(user.id, email)
            user = replace(user, email=email)
        signed_in_at = claims.get("auth_time")
        return BearerIdentity(
            user,
            claims.get("admin") is True,
            email,
            signed_in_at if isinstance(signed_in_at, int) else 0,
        )

    def verify_sign_in(self, token: str, max_age_s: int) -> BearerIdentity:
        """A token for a new session: verified, and from a sign-in at most max_age_s ago,
        so a token taken from a browser cannot be turned into a fresh session later."""
        identity = self.verify_bearer(token)
        age = self.clock().timestamp() - identity.signed_in_at
        if not -CLOCK_SKEW_S <= age <= max_age_s:
            raise NotSignedIn("a session needs a recent sign-in; sign in again")
        return identity

    def from_session(self, user_id: str) -> User:
        user = self.store.get_user(user_id)
        if user is None:
            raise NotSignedIn("the session has expired; sign in again")
        return user
