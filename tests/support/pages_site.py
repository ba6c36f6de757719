"""The app in-process behind Flask's test client, with a browser-like signed-in visitor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from services.container import Services
from services.ledger.model import TxnType

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Site:
    """One app and its data; ``visitor()`` gives each person their own cookie jar."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        config = {
            "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",
            "SANDBOX_DB_PATH": f"{tmp_path}/sandbox.db",
            "SANDBOX_WEBHOOKS": "off",  # nothing listens; the pages fulfil by themselves
            "APP_BASE_URL": "http://localhost",
            **env,
        }
        self.app: Flask = create_app(config)
        self.services: Services = self.app.extensions["services"]

    def visitor(self, base_url: str = "http://localhost") -> Visitor:
        return Visitor(self.app.test_client(), base_url)

    def signed_in(self, email: str, username: str | None = None) -> Visitor:
        visitor = self.visitor()
        visitor.sign_in(email, username)
        return visitor

    def grant(self, user_id: str, amount: int, key: str) -> None:
        self.services.ledger.credit(user_id, amount, key=key, type=TxnType.GRANT, reason="test")

    def balance(self, user_id: str) -> int:
        return self.services.ledger.balance(user_id).balance

    def entry_count(self, user_id: str) -> int:
        return len(self.services.ledger.history(user_id, limit=100).entries)

    def close(self) -> None:
        self.services.store.close()


class Visitor:
    def __init__(self, client: FlaskClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.user_id = ""

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, base_url=self.base_url, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.post(path, base_url=self.base_url, **kwargs)

    def csrf(self, path: str = "/signin") -> str:
        """The CSRF token a page of ``path`` carries for this visitor's session."""
        match = CSRF_META.search(self.get(path).get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def sign_in(
        self, email: str, username: str | None = None, next_path: str = "/"
    ) -> TestResponse:
        form = {"csrf_token": self.csrf(), "email": email, "next": next_path}
        if username:
            form["username"] = username
        response = self.post("/signin", data=form)
        assert response.status_code == 303, response.get_data(as_text=True)
        self.user_id = self.get("/auth/me").get_json()["user"]["id"]
        return response

    def signed_in(self) -> bool:
        return self.get("/auth/me").status_code == 200


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field"
    return match.group(1)
