"""A signed-in user of a running server over real HTTP: the one base of the tests' clients.

The session cookie goes to every port of 127.0.0.1 (cookies are not per port), so one
client can talk to each server process of one app. Several threads may send through
one client at once (the storm's buyers do): each client keeps at most one idle
connection, so that hundreds of clients stay under a gunicorn worker's 1,000
connections, past which it stops accepting (tests/integration/test_client_connections.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

SIGN_IN_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
CARD_PAYS = "4242424242424242"


class SiteClient:
    """A session cookie plus the CSRF token the app issued at sign-in.

    ``server()`` picks the server of each request (``base_url`` here); a request's
    ``via`` sends it to another server process of the same app instead.
    """

    timeout: float = REQUEST_TIMEOUT_S

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        # A connection opened for a concurrent request is closed after it, not kept.
        self.http.mount("http://", HTTPAdapter(pool_maxsize=1))
        self.user_id = ""
        self.csrf = ""

    def server(self) -> str:
        return self.base_url

    def dev_login(
        self, email: str, username: str | None = None, timeout: float = SIGN_IN_TIMEOUT_S
    ) -> requests.Response:
        """POST /auth/dev-login; ``signed_in`` takes the user and token from its answer."""
        return self.http.post(
            f"{self.server()}/auth/dev-login",
            json={"email": email, "username": username},
            timeout=timeout,
        )

    def signed_in(self, body: dict[str, Any]) -> None:
        self.user_id = str(body["user"]["id"])
        self.csrf = str(body["csrf_token"])

    def post(self, path: str, *, via: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        url = f"{via or self.server()}{path}"
        return self.http.post(url, headers=headers, timeout=self.timeout, **kwargs)

    def get(self, path: str, *, via: str | None = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
        return self.http.get(f"{via or self.server()}{path}", **kwargs)

    def pay_on_checkout_page(
        self, checkout_url: str, card: str = CARD_PAYS, **fields: str
    ) -> requests.Response:
        """Submit the sandbox's hosted checkout form, not following the redirect to the
        success page (which would fulfil the purchase itself)."""
        parts = urlsplit(checkout_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        data = {"csrf_token": self.csrf, "card_number": card, **fields}
        return self.post(path, data=data, allow_redirects=False)

    def pending_deliveries(self) -> int:
        """The sandbox's webhook deliveries still to be made."""
        return int(self.get("/sandbox/deliveries").json()["pending"])
