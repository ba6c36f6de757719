"""Where sign-in sends people back to: same-site paths only, never another site."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar, cast
from urllib.parse import quote, urlsplit

from flask import Response, redirect, request

from api.http import deps
from services.errors import NotSignedIn

DEFAULT_NEXT = "/buy-tokens"
MAX_NEXT_LENGTH = 2048
P = ParamSpec("P")
R = TypeVar("R")


def safe_next(raw: object, default: str = DEFAULT_NEXT) -> str:
    """``raw`` if it is a path on this site, else ``default``.

    Browsers read "//host" and "/\\host" as other sites and drop tabs and
    newlines inside URLs, so those are refused along with anything that has
    a scheme or a host once parsed.
    """
    if not isinstance(raw, str) or not raw or len(raw) > MAX_NEXT_LENGTH:
        return default
    if not raw.isprintable() or "\\" in raw or not raw.startswith("/") or raw.startswith("//"):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return default
    return raw


def current_path() -> str:
    """This request's path and query, as a ``next`` value."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def signin_url(next_path: str | None = None) -> str:
    target = safe_next(next_path if next_path is not None else current_path())
    return "/signin?next=" + quote(target, safe="/")


def to_signin(next_path: str | None = None) -> Response:
    return cast(Response, redirect(signin_url(next_path), code=303))


def signin_required(
    back: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Signed-out visitors go to /signin and then return to this page.

    A form posted while signed out returns to ``back`` (the page the form is
    on), since the POST itself cannot be replayed by a redirect.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                deps.current_user()
            except NotSignedIn:
                return to_signin(None if request.method == "GET" else back or DEFAULT_NEXT)
            return view(*args, **kwargs)

        return wrapper

    return decorate
