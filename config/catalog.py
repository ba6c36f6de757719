"""The token package catalog: the one source of truth for packs and prices.

The default catalog is below. Operators replace it with a JSON file named by
``TOKEN_CATALOG_FILE``; every entry is validated at start-up and a bad one
stops the app with a message that names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.currencies import KNOWN, format_minor
from config.errors import ConfigError

MAX_TOKENS = 10**9
MAX_PRICE_MINOR = 10**8

DEFAULT_PACKS: list[dict[str, Any]] = [
    {
        "id": "starter",
        "name": "Starter",
        "tokens": 50,
        "bonus": 0,
        "price_cents": 499,
        "description": "50 tokens to try things out.",
    },
    {
        "id": "popular",
        "name": "Popular",
        "tokens": 110,
        "bonus": 10,
        "price_cents": 999,
        "badge": "MOST POPULAR",
        "description": "100 tokens plus 10 bonus tokens.",
    },
    {
        "id": "pro",
        "name": "Pro",
        "tokens": 250,
        "bonus": 50,
        "price_cents": 1999,
        "description": "200 tokens plus 50 bonus tokens.",
    },
    {
        "id": "creator",
        "name": "Creator",
        "tokens": 700,
        "bonus": 200,
        "price_cents": 4999,
        "badge": "BEST VALUE",
        "description": "500 tokens plus 200 bonus tokens.",
    },
]
DEFAULT_CURRENCY = "usd"


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    tokens: int  # total credited, bonus included
    bonus: int
    price_cents: int  # integer minor units of ``currency``
    currency: str
    description: str = ""
    badge: str | None = None
    available: bool = True
    stripe_price_id: str | None = None

    @property
    def display_price(self) -> str:
        return format_minor(self.price_cents, self.currency)

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tokens": self.tokens,
            "bonus": self.bonus,
            "price": self.display_price,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "description": self.description,
            "badge": self.badge,
            "available": self.available,
        }


class Catalog:
    def __init__(self, packs: list[Pack]) -> None:
        self._packs = {pack.id: pack for pack in packs}

    def __iter__(self) -> Iterator[Pack]:
        return iter(self._packs.values())

    def __len__(self) -> int:
        return len(self._packs)

    def get(self, pack_id: str) -> Pack | None:
        return self._packs.get(pack_id)


def _positive_int(entry: Mapping[str, Any], field: str, where: str, limit: int) -> int:
    value = entry.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise ConfigError(
            f"{where}: {field} must be a whole number from 1 to {limit}, got {value!r}"
        )
    return value


def _text(entry: Mapping[str, Any], field: str, where: str, required: bool) -> str | None:
    value = entry.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {field} must be a non-empty string, got {value!r}")
    return value


def parse_pack(entry: Any, default_currency: str, position: int) -> Pack:
    where = f"package #{position + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be an object, got {type(entry).__name__}")
    pack_id = _text(entry, "id", where, required=True)
    where = f"package {pack_id!r}"
    tokens = _positive_int(entry, "tokens", where, MAX_TOKENS)
    bonus = entry.get("bonus", 0)
    if isinstance(bonus, bool) or not isinstance(bonus, int) or not 0 <= bonus < tokens:
        raise ConfigError(
            f"{where}: bonus must be a whole number from 0 to tokens - 1, got {bonus!r}"
        )
    currency = str(entry.get("currency", default_currency)).lower()
    if currency not in KNOWN:
        raise ConfigError(f"{where}: unknown currency {entry.get('currency')!r}")
    available = entry.get("available", True)
    if not isinstance(available, bool):
        raise ConfigError(f"{where}: available must be true or false, got {available!r}")
    return Pack(
        id=str(pack_id),
        name=_text(entry, "name", where, required=True) or "",
        tokens=tokens,
        bonus=bonus,
        price_cents=_positive_int(entry, "price_cents", where, MAX_PRICE_MINOR),
        currency=currency,
        description=_text(entry, "description", where, required=False) or "",
        badge=_text(entry, "badge", where, required=False),
        available=available,
        stripe_price_id=_text(entry, "stripe_price_id", where, required=False),
    )


def parse_catalog(data: Any) -> Catalog:
    """Build a catalog from parsed JSON: {"currency"?: "usd", "packages": [...]}."""
    if isinstance(data, list):
        data = {"packages": data}
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise ConfigError('the catalog must be {"packages": [...]} or a list of packages')
    default_currency = str(data.get("currency", DEFAULT_CURRENCY)).lower()
    packs = [parse_pack(e, default_currency, i) for i, e in enumerate(data["packages"])]
    if not packs:
        raise ConfigError("the catalog has no packages")
    seen: set[str] = set()
    for pack in packs:
        if pack.id in seen:
            raise ConfigError(f"package {pack.id!r}: duplicate id")
        seen.add(pack.id)
    return Catalog(packs)


def load_catalog(path: str | None) -> Catalog:
    """The default catalog, or the file at ``path`` (TOKEN_CATALOG_FILE)."""
    if not path:
        return parse_catalog({"currency": DEFAULT_CURRENCY, "packages": DEFAULT_PACKS})
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"TOKEN_CATALOG_FILE {path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TOKEN_CATALOG_FILE {path}: not valid JSON: {exc}") from exc
    try:
        return parse_catalog(data)
    except ConfigError as exc:
        raise ConfigError(f"TOKEN_CATALOG_FILE {path}: {exc}") from exc
