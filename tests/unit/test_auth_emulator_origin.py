"""Which Firebase Auth emulator the sign-in page may use: the one firebase-admin uses, never
in production, and only a plain host:port (the value goes into the page and the CSP header)."""

from __future__ import annotations

import pytest

from api.http.security_headers import AUTH_EMULATOR_VARIABLE, auth_emulator_origin
from config import ConfigError, Settings

DEVELOPMENT = Settings(firebase_project_id="demo-x")
PRODUCTION = Settings(app_env="production", firebase_project_id="demo-x")


@pytest.mark.parametrize("host", ["127.0.0.1:9099", "localhost:9099", "auth-emulator:9099"])
def test_a_host_and_port_becomes_an_http_origin(host: str) -> None:
    assert auth_emulator_origin(DEVELOPMENT, {AUTH_EMULATOR_VARIABLE: host}) == f"http://{host}"


@pytest.mark.parametrize("env", [{}, {AUTH_EMULATOR_VARIABLE: ""}, {AUTH_EMULATOR_VARIABLE: " "}])
def test_no_emulator_when_the_variable_is_unset_or_empty(env: dict[str, str]) -> None:
    assert auth_emulator_origin(DEVELOPMENT, env) is None


def test_production_never_points_the_page_at_an_emulator() -> None:
    assert auth_emulator_origin(PRODUCTION, {AUTH_EMULATOR_VARIABLE: "127.0.0.1:9099"}) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "http://127.0.0.1:9099", "127.0.0.1:9099; script-src *", "a b:1", "h:9099/x"],
)
def test_anything_but_host_and_port_stops_start_up(host: str) -> None:
    with pytest.raises(ConfigError, match=AUTH_EMULATOR_VARIABLE):
        auth_emulator_origin(DEVELOPMENT, {AUTH_EMULATOR_VARIABLE: host})
