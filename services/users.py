"""Finding a user by what a person types: one lookup for tips, grants and the dashboard."""

from __future__ import annotations

from typing import Protocol

from services.auth import USERNAME
from services.errors import DomainError
from services.ledger.rules import validate_user_id
from services.payments.model import User


class UserLookup(Protocol):
    def get_user(self, user_id: str) -> User | None: ...

    def find_user_by_username(self, username: str) -> User | None: ...


class UserLookupByEmail(UserLookup, Protocol):
    def find_user_by_email(self, email: str) -> User | None: ...


def is_user_id(text: str) -> bool:
    try:
        validate_user_id(text)
    except DomainError:
        return False
    return True


def find_user(users: UserLookup, query: str) -> User | None:
    """By username (case-insensitive, with or without '@'), then by exact user id.

    The order cannot surprise: a username that is another user's id is refused
    when it is chosen (``AuthService``)."""
    wanted = query.strip()
    name = wanted.removeprefix("@")
    found = users.find_user_by_username(name) if USERNAME.match(name) else None
    if found is None and is_user_id(wanted):
        found = users.get_user(wanted)
    return found


def find_user_or_email(users: UserLookupByEmail, query: str) -> User | None:
    """What operators search by: a username, a user id, or an email address."""
    found = find_user(users, query)
    wanted = query.strip()
    if found is None and "@" in wanted.lstrip("@"):
        found = users.find_user_by_email(wanted) or users.find_user_by_email(wanted.lower())
    return found
