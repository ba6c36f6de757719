"""Grants by operators and the signup bonus, each one journal transaction."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cli import tokens_in_process
from tests.support.purchases import Buyer
from tests.support.server import AppServer, tokens_cli
from tests.support.stores import opened


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer({"SIGNUP_BONUS": "25"}).start()
    yield server
    server.stop()


def grant(server: AppServer, *args: str) -> subprocess.CompletedProcess[str]:
    return tokens_cli(server.env, "grant", *args)


def test_a_new_account_gets_the_signup_bonus_once(app: AppServer) -> None:
    first = Buyer(app.url, "new@example.com")
    again = Buyer(app.url, "new@example.com")  # signing in again grants nothing more
    assert again.balance() == 25
    assert [(t["type"], t["description"]) for t in first.history()] == [
        ("grant", "Grant: Welcome bonus")
    ]


def test_an_operator_grant_by_username_with_a_key(app: AppServer) -> None:
    user = Buyer(app.url, "granted@example.com", username="lucky")
    done = grant(app, "LUCKY", "40", "--reason", "sorry for the outage", "--key", "inc-7")
    assert done.returncode == 0, done.stderr
    assert "balance 65" in done.stdout
    repeated = grant(app, "lucky", "40", "--reason", "sorry for the outage", "--key", "inc-7")
    assert repeated.returncode == 0
    assert user.balance() == 65
    assert user.history()[0]["description"] == "Grant: sorry for the outage"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "5", "--reason", "x"], "no user called"),
        (["lucky", "0", "--reason", "x"], "0"),
        (["lucky", "5"], "--reason"),
    ],
)
def test_bad_grants_are_refused(app: AppServer, args: list[str], message: str) -> None:
    Buyer(app.url, "someone@example.com", username="lucky")
    refused = tokens_in_process(app.env, "grant", *args)
    assert refused.returncode != 0
    assert message in refused.stderr


def test_a_cli_grant_is_audited_under_the_operator_who_ran_it(app: AppServer) -> None:
    user = Buyer(app.url, "audited@example.com", username="audited")
    done = grant(app, "audited", "7", "--reason", "goodwill", "--key", "g-1", "--operator", "ana")
    again = tokens_cli(
        {**app.env, "TOKENS_OPERATOR": "ana"},
        "grant",
        "audited",
        "7",
        "--reason",
        "goodwill",
        "--key",
        "g-1",
    )
    assert done.returncode == 0 and again.returncode == 0, done.stderr + again.stderr
    assert "nothing more" in again.stdout
    assert user.balance() == 32
    with opened(app) as store:
        records = store.list_audit(10, target=f"user:{user.user_id}")
    assert [(r.admin_id, r.action, r.reason) for r in records] == [
        ("cli:ana", "grant_tokens", "goodwill")
    ]
