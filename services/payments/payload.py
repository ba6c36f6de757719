"""Reading fields of a Stripe payload (an event's object, a retrieved session).

One reader for every handler, so they agree on what a field may hold: JSON's
``true`` is no amount, though Python counts bool as an int.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.errors import InvalidPayload

# Stripe's amounts have at most twelve digits. A larger one is no Stripe amount, and
# past 2**63 no store keeps it: Firestore refuses it, so the event would fail for ever.
MAX_STRIPE_AMOUNT = 10**12 - 1


def _name(obj: Mapping[str, Any], name: str) -> str:
    return f"{obj.get('object', 'object')}.{name}"


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """The field when it is a ``kind`` (a bool only when ``kind`` says so), None when absent."""
    value = obj.get(name)
    if value is not None and not _is(value, kind):
        raise InvalidPayload(f"{_name(obj, name)} has the wrong type")
    return value


def amount(obj: Mapping[str, Any], name: str) -> int:
    """A required amount in minor units, within what Stripe can send."""
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{_name(obj, name)} must be a whole amount")
    if not 0 <= value <= MAX_STRIPE_AMOUNT:
        raise InvalidPayload(f"{_name(obj, name)} is not a Stripe amount")
    return value


def text(obj: Mapping[str, Any], name: str) -> str:
    """A required, non-empty string."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{_name(obj, name)} is missing")
    return value
