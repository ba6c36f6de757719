"""A purchase's disputes, by dispute id (several per charge), and what they take.

Every status of the pinned API version (2026-10-28.endive) has an outcome:

| status                   | tokens of the disputed share                     |
|--------------------------|--------------------------------------------------|
| `warning_needs_response` | none taken: an inquiry withdraws no money        |
| `warning_under_review`   | none taken                                       |
| `warning_closed`         | none taken (the inquiry ended, for good)         |
| `needs_response`         | taken                                            |
| `under_review`           | taken                                            |
| `lost`                   | kept                                             |
| `appeal_needs_response`  | kept: the money stays withdrawn during an appeal |
| `appeal_under_review`    | kept                                             |
| `won`                    | restored, for good (also after an appeal)        |
| `prevented`              | none taken, for good (a refund settles it)       |

and the money events agree with them: ``charge.dispute.funds_withdrawn``
takes the share if the status did not already, ``funds_reinstated`` restores
it for good. Deliveries come in any order and repeat, so a record moves only
forward in the dispute's life (``DISPUTE_RANK``); a status Stripe adds later
keeps the record as it was. ``lost`` is both a first decision and an appeal's
decision: during an appeal it ends the appeal, so a late appeal status cannot
reopen it, and ``won`` still overrides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.payments import payload

TAKES = frozenset(
    {"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"}
)
DISPUTE_RANK: Mapping[str, int] = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "needs_response": 2,
    "under_review": 3,
    "lost": 4,
    "appeal_needs_response": 5,
    "appeal_under_review": 6,
    "won": 9,
    "warning_closed": 9,
    "prevented": 9,
}
APPEAL_DECIDED = 7  # the rank of a ``lost`` that ends an appeal
FINAL = 9
WITHDRAWN = "withdrawn"
REINSTATED = "reinstated"

Records = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class DisputeFact:
    """One dispute as an event reported it; ``funds``: a money event's news."""

    id: str
    amount: int
    status: str
    funds: str | None = None

    @classmethod
    def of(cls, dispute: Mapping[str, Any], funds: str | None = None) -> DisputeFact:
        # A closed event that overtook its created one may lack the amount.
        amount = payload.amount(dispute, "amount") if "amount" in dispute else 0
        return cls(payload.text(dispute, "id"), amount, payload.text(dispute, "status"), funds)


def _rank(status: str, current: int) -> int | None:
    rank = DISPUTE_RANK.get(status)
    if status == "lost" and DISPUTE_RANK["lost"] < current < APPEAL_DECIDED:
        return APPEAL_DECIDED
    return rank


def learn(records: Records, fact: DisputeFact) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The records with ``fact`` applied, and the change's name (None: nothing new)."""
    updated = {key: dict(value) for key, value in records.items()}
    known = updated.get(fact.id)
    fresh: dict[str, Any] = {"amount": 0, "status": "", "rank": -1, "funds": None}
    record: dict[str, Any] = dict(known) if known else fresh
    changes: list[str] = []
    rank = _rank(fact.status, int(record["rank"]))
    if rank is not None and rank > int(record["rank"]) and int(record["rank"]) < FINAL:
        record.update(status=fact.status, rank=rank)
        changes.append(f"{fact.status}@{rank}")
    if fact.funds is not None and record["funds"] != REINSTATED and record["funds"] != fact.funds:
        record["funds"] = fact.funds
        changes.append(fact.funds)
    if not record["amount"] and fact.amount:
        record["amount"] = fact.amount
        changes.append(f"amount={fact.amount}")
    if not changes:
        return updated, None
    updated[fact.id] = record
    return updated, f"{fact.id}:{'+'.join(changes)}"


def takes(record: Mapping[str, Any]) -> bool:
    """Whether the dispute holds its share of the tokens now (the module's table)."""
    if record.get("funds") == REINSTATED or record.get("status") in ("won", "prevented"):
        return False
    return record.get("status") in TAKES or record.get("funds") == WITHDRAWN


def disputed_amount(records: Records) -> int:
    """Minor units of the disputes that take tokens now."""
    return sum(int(r["amount"]) for r in records.values() if takes(r))
