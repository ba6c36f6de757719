"""The token package catalog: defaults and the operator's replacement file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.catalog import load_catalog
from config.currencies import format_minor
from config.errors import ConfigError


def test_default_catalog_matches_the_published_packs() -> None:
    packs = {p.id: p for p in load_catalog(None)}
    summary = {k: (p.tokens, p.bonus, p.price_cents, p.currency, p.badge) for k, p in packs.items()}
    assert summary == {
        "starter": (50, 0, 499, "usd", None),
        "popular": (110, 10, 999, "usd", "MOST POPULAR"),
        "pro": (250, 50, 1999, "usd", None),
        "creator": (700, 200, 4999, "usd", "BEST VALUE"),
    }
    assert [p.display_price for p in packs.values()] == ["4.99", "9.99", "19.99", "49.99"]


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return str(path)


def pack(**overrides: Any) -> dict[str, Any]:
    return {"id": "mini", "name": "Mini", "tokens": 10, "price_cents": 199, **overrides}


def test_a_valid_file_replaces_the_catalog(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"currency": "eur", "packages": [pack(), pack(id="yen", currency="JPY")]}
    )
    catalog = load_catalog(path)
    assert [(p.id, p.currency, p.display_price) for p in catalog] == [
        ("mini", "eur", "1.99"),
        ("yen", "jpy", "199"),
    ]


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ([pack(), pack()], "package 'mini': duplicate id"),
        ([pack(tokens=0)], "package 'mini': tokens must be"),
        ([pack(tokens=-5)], "package 'mini': tokens must be"),
        ([pack(tokens=2.5)], "package 'mini': tokens must be"),
        ([pack(price_cents=0)], "package 'mini': price_cents must be"),
        ([pack(price_cents="1.99")], "package 'mini': price_cents must be"),
        ([pack(currency="xyz")], "package 'mini': unknown currency 'xyz'"),
        ([pack(bonus=10)], "package 'mini': bonus must be"),
        ([pack(name="")], "package 'mini': name must be"),
        ([{"name": "No id", "tokens": 1, "price_cents": 1}], "package #1: id must be"),
        ([], "no packages"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_it(
    tmp_path: Path, packages: list[Any], message: str
) -> None:
    path = write(tmp_path, {"packages": packages})
    with pytest.raises(ConfigError, match=message) as caught:
        load_catalog(path)
    assert path in str(caught.value)


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_catalog(str(broken))


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(999, "usd", "9.99"), (5, "usd", "0.05"), (500, "jpy", "500"), (-150, "eur", "-1.50")],
)
def test_minor_units_display_without_floats(amount: int, currency: str, text: str) -> None:
    assert format_minor(amount, currency) == text
