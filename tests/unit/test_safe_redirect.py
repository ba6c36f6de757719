"""Sign-in's ``next`` goes only to paths on this site, never to another one."""

from __future__ import annotations

import pytest

from api.http.redirects import DEFAULT_NEXT, safe_next

HOSTILE = [
    "https://evil.example",
    "http://evil.example/buy-tokens",
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "https:/evil.example",
    "/\t/evil.example",  # browsers drop tabs and newlines: this would read as //evil.example
    "/\n/evil.example",
    "/\r/evil.example",
    "/\x00/evil.example",
    "/\u2028/evil.example",
    " /buy-tokens",
    "",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_other_sites_and_odd_values_fall_back_to_the_packs(raw: str) -> None:
    assert safe_next(raw) == DEFAULT_NEXT


@pytest.mark.parametrize("raw", [None, 42, b"/buy-tokens", ["/buy-tokens"]])
def test_values_that_are_not_text_fall_back(raw: object) -> None:
    assert safe_next(raw) == DEFAULT_NEXT


@pytest.mark.parametrize(
    "raw",
    [
        "/buy-tokens",
        "/tokens/history?type=grant&cursor=czE5",
        "/token-purchase-success?session_id=cs_test_1",
        "/",
        "/tokens/history?next=//evil.example",  # a query is not a destination
    ],
)
def test_same_site_paths_are_kept(raw: str) -> None:
    assert safe_next(raw) == raw


def test_the_fallback_can_be_chosen() -> None:
    assert safe_next("//evil.example", default="/tokens/history") == "/tokens/history"
