"""Stripe's own example API objects, for tests that need the exact shape Stripe sends.

The objects come from ``../shared/stripe/fixtures3.json`` (Stripe's public
openapi fixtures, see the README next to it). Start from one of them and
override only the fields a test is about::

    session = fixture("checkout.session", id="cs_test_1", payment_status="paid")
    event = fixture("event", type="checkout.session.completed", data={"object": session})
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"


class FixturesNotFound(RuntimeError):
    """fixtures3.json is missing or unreadable: the tests that need it fail, never skip."""


@cache
def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FixturesNotFound(
            f"Stripe fixtures not found: looked for {path} "
            "(expected ../shared/stripe/fixtures3.json next to the project root)"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise FixturesNotFound(f"Stripe fixtures at {path} cannot be read: {exc}") from exc
    resources = data.get("resources") if isinstance(data, dict) else None
    if not isinstance(resources, dict):
        raise FixturesNotFound(f"Stripe fixtures at {path} have no 'resources' object")
    return resources


def load_fixtures(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """A deep copy of every resource in fixtures3.json, keyed by object name."""
    return copy.deepcopy(_load(path or FIXTURES_PATH))


def resource_names() -> list[str]:
    """The object names the fixtures hold ("checkout.session", "charge", ...)."""
    return sorted(_load(FIXTURES_PATH))


def fixture(name: str, /, **overrides: Any) -> dict[str, Any]:
    """A deep copy of ``resources[name]`` with top-level ``overrides`` applied.

    Overrides replace whole top-level values (a nested dict is not merged);
    the values are deep-copied too, so callers may reuse them.
    """
    resources = _load(FIXTURES_PATH)
    if name not in resources:
        raise KeyError(f"no Stripe fixture named {name!r} in {FIXTURES_PATH}")
    obj = copy.deepcopy(resources[name])
    obj.update(copy.deepcopy(overrides))
    return obj
