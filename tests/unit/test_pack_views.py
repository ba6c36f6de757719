"""Pack cards: price per 100 tokens in integer maths, badges, and readable waits."""

from __future__ import annotations

import pytest

from api.pages.buy import best_value_id, price_per_100, wait_text
from config.catalog import Pack, load_catalog


def pack(pack_id: str, tokens: int, price: int, badge: str | None = None) -> Pack:
    return Pack(pack_id, pack_id.title(), tokens, 0, price, "usd", badge=badge)


@pytest.mark.parametrize(
    ("tokens", "price", "per_100"),
    [(50, 499, 998), (110, 999, 908), (250, 1999, 800), (700, 4999, 714), (3, 100, 3333)],
)
def test_price_per_100_tokens_rounds_half_up_in_minor_units(
    tokens: int, price: int, per_100: int
) -> None:
    assert price_per_100(pack("p", tokens, price)) == per_100


def test_best_value_is_the_lowest_price_per_token() -> None:
    packs = [pack("small", 10, 100), pack("big", 100, 900), pack("mid", 50, 480)]
    assert best_value_id(packs) == "big"


def test_a_catalog_that_names_its_best_value_is_left_alone() -> None:
    assert best_value_id(list(load_catalog(None))) is None  # "BEST VALUE" is on creator


def test_one_pack_is_nobody_s_best_value() -> None:
    assert best_value_id([pack("only", 10, 100)]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "1 second"), (45, "45 seconds"), (60, "1 minute"), (61, "2 minutes"), (3600, "1 hour")],
)
def test_retry_waits_read_naturally(seconds: int, text: str) -> None:
    assert wait_text(seconds) == text
