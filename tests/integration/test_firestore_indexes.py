"""Every query the Firestore adapter runs has its index in firestore.indexes.json.

The emulator never asks for an index, so production would be the first to
fail with "The query requires an index". Here every query-issuing method of
the adapter runs against the emulator while the client's query RPCs are
recorded; the composite index each recorded query needs is derived from
its wire form and looked up in the file. A static scan of the adapter finds
every function that builds a query, so a new query without an exercise
below fails too, and an index no query uses is reported as stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from services.ledger.model import (
    HistoryPosition,
    JournalTransaction,
    Operation,
    OpKind,
    SystemAccount,
    TxnType,
    format_time,
    transaction_id_for,
)
from services.operations.model import AuditRecord
from services.payments.model import (
    Purchase,
    PurchaseLimits,
    PurchaseState,
    SecurityAlert,
    User,
)
from services.store import firestore as ledger_adapter
from services.store.firestore import FirestoreStore
from services.store.port import Store
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.firestore_queries import (
    ANY,
    ASC,
    DESC,
    QueryRecorder,
    RecordedQuery,
    RequiredIndex,
    firestore_modules,
    load_indexes,
    query_building_functions,
    required_index,
    serves,
)
from tests.support.records import purchase_record

ROOT = Path(__file__).resolve().parents[2]
INDEXES = ROOT / "firestore.indexes.json"
OWNER, OTHER = "alice", "bob"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PENDING, PAID = PurchaseState.PENDING, PurchaseState.PAID


def _purchase(purchase_id: str, user_id: str, state: PurchaseState, **ids: str) -> Purchase:
    # p<n> is created n seconds after NOW, so newest-first results have one order.
    created = NOW + timedelta(seconds=int(purchase_id[1:]))
    changes: dict[str, str | None] = {"session_id": None, **ids}
    return purchase_record(purchase_id, OWNER, created, state, user_id=user_id, **changes)


def _seed(store: Store) -> None:
    for uid in (OWNER, OTHER):
        store.ensure_user(User(id=uid, email=f"{uid}@example.com"), NOW)
    # OWNER's history, seq 1..5: three purchases, a grant, a tip to OTHER.
    for n in (1, 2, 3):
        store.apply(Operation(OpKind.CREDIT, f"buy-{n}", OWNER, 100, TxnType.PURCHASE), NOW)
    store.apply(Operation(OpKind.CREDIT, "grant", OWNER, 50, TxnType.GRANT), NOW)
    store.apply(
        Operation(OpKind.TRANSFER, "tip", OWNER, 10, TxnType.TRANSFER, counterparty_id=OTHER), NOW
    )
    # p1 is a gift to OTHER; p3 is added by the purchase-limits exercise.
    store.start_purchase(_purchase("p1", OTHER, PENDING, session_id="cs_test_1"), None, NOW)
    store.start_purchase(_purchase("p2", OWNER, PAID, payment_intent_id="pi_2"), None, NOW)
    for n in (1, 2):
        moment = format_time(NOW + timedelta(minutes=n))
        store.add_alert(SecurityAlert("amount_mismatch", "warning", created_at=moment, id=f"a{n}"))
    store.record_event_failure("evt_1", "charge.refunded", "StorageUnavailable", NOW)
    for n, target in ((1, f"user:{OWNER}"), (2, "purchase:p2")):
        moment = format_time(NOW + timedelta(minutes=n))
        store.add_audit(AuditRecord(f"audit{n}", "admin", "grant_tokens", target, "test", moment))


@dataclass(frozen=True)
class Exercise:
    name: str
    run: Callable[[Store], object]
    expect: object  # what run() returns on the seeded data, so the query really ran


def _seqs(entries: list[Any]) -> list[int]:
    return [entry.seq for entry in entries]


def _after_seq(store: Store, seq: int) -> HistoryPosition:
    """The position a history cursor names: past the entry at ``seq``."""
    (entry,) = [e for e in store.list_entries(OWNER, 10, None, None) if e.seq == seq]
    return HistoryPosition(seq, int(entry.balance_after or 0) - entry.amount, entry.id)


AROUND_NOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))

# In this order: the purchase-limits exercise adds p3 before the purchase queries.
EXERCISES = [
    Exercise("history", lambda s: _seqs(s.list_entries(OWNER, 10, None, None)), [5, 4, 3, 2, 1]),
    Exercise("history-page-2", lambda s: _seqs(s.list_entries(OWNER, 2, 4, None)), [3, 2]),
    Exercise(
        "history-page-2-by-position",
        lambda s: _seqs(s.list_entries(OWNER, 2, _after_seq(s, 4), None)),
        [3, 2],
    ),
    Exercise(  # the tip's recipient was credited blind: its balance_after is derived
        "blind-credit-balance",
        lambda s: _balance_after(s.get_transaction(transaction_id_for("tip")), OTHER),
        10,
    ),
    Exercise(
        "history-by-type",
        lambda s: _seqs(s.list_entries(OWNER, 10, None, "purchase")),
        [3, 2, 1],
    ),
    Exercise(
        "history-by-type-page-2",
        lambda s: _seqs(s.list_entries(OWNER, 10, 3, "purchase")),
        [2, 1],
    ),
    Exercise("system-total", lambda s: s.system_balance(SystemAccount.ISSUANCE), -350),
    Exercise(
        "purchase-limits",
        lambda s: s.start_purchase(_purchase("p3", OWNER, PENDING), PurchaseLimits(), NOW).id,
        "p3",
    ),
    Exercise("find-by-session", lambda s: _found(s.find_purchase(session_id="cs_test_1")), "p1"),
    Exercise(
        "find-by-payment-intent",
        lambda s: _found(s.find_purchase(payment_intent_id="pi_2")),
        "p2",
    ),
    Exercise("alerts", lambda s: [a.id for a in s.list_alerts()], ["a2", "a1"]),
    Exercise(
        "dashboard-open-alerts-of-severity",
        lambda s: [a.id for a in s.list_open_alerts("warning", 10)],
        ["a2", "a1"],
    ),
    Exercise(
        "dashboard-purchases-of-the-day",
        lambda s: _ids(s.purchases_created(*AROUND_NOW, PENDING)),
        ["p1", "p3"],
    ),
    Exercise(
        "dashboard-purchases-in-state",
        lambda s: _ids(s.purchases_in_state(PENDING, 10)),
        ["p3", "p1"],
    ),
    Exercise("dashboard-purchases-of-user", lambda s: _ids(s.purchases_of_user(OTHER, 10)), ["p1"]),
    Exercise(
        "dashboard-user-by-email",
        lambda s: getattr(s.find_user_by_email(f"{OTHER}@example.com"), "id", None),
        OTHER,
    ),
    Exercise(
        "dashboard-event-failures",
        lambda s: [f.event_id for f in s.list_event_failures(10)],
        ["evt_1"],
    ),
    Exercise("dashboard-audit", lambda s: _ids(s.list_audit(10)), ["audit2", "audit1"]),
    Exercise(
        "dashboard-audit-of-target",
        lambda s: _ids(s.list_audit(10, target=f"user:{OWNER}")),
        ["audit1"],
    ),
    # Paged two at a time (see the fixture), so the cursor queries run too.
    Exercise("reconcile-journal", lambda s: len(list(s.iter_transactions())), 5),
    Exercise(
        "reconcile-accounts", lambda s: [a.user_id for a in s.iter_accounts()], [OWNER, OTHER]
    ),
    Exercise("reconcile-purchases", lambda s: _ids(s.iter_purchases()), ["p1", "p2", "p3"]),
]


def _balance_after(txn: JournalTransaction | None, user_id: str) -> int | None:
    return None if txn is None else txn.user_entry(user_id).balance_after


def _ids(items: Iterable[Any]) -> list[str]:
    return [item.id for item in items]


def _found(purchase: Purchase | None) -> str | None:
    return None if purchase is None else purchase.id


@dataclass(frozen=True)
class Run:
    result: object
    queries: list[RecordedQuery]


@pytest.fixture(scope="module")
def runs(firestore_emulator: FirestoreEmulator) -> Iterator[dict[str, Run]]:
    project = f"demo-indexes-{uuid.uuid4().hex[:8]}"
    client = firestore.Client(project=project)
    store: Store = FirestoreStore(project, client=client)
    recorder = QueryRecorder(firestore_modules(ROOT))
    try:
        _seed(store)
        done: dict[str, Run] = {}
        with pytest.MonkeyPatch.context() as patch, recorder.watch(client):
            patch.setattr(ledger_adapter, "PAGE_SIZE", 2)
            for exercise in EXERCISES:
                first = len(recorder.queries)
                result = exercise.run(store)
                done[exercise.name] = Run(result, recorder.queries[first:])
        yield done
    finally:
        store.close()


def _missing(query: RecordedQuery, indexes: list[dict[str, Any]]) -> RequiredIndex | None:
    need = required_index(query.query, query.aggregations)
    if need is None or any(serves(index, need) for index in indexes):
        return None
    return need


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_query_has_its_index(runs: dict[str, Run], exercise: Exercise) -> None:
    run = runs[exercise.name]
    assert run.result == exercise.expect
    assert run.queries, f"{exercise.name} sent no query; it no longer tests one"
    indexes = load_indexes(INDEXES)
    for query in run.queries:
        need = _missing(query, indexes)
        assert need is None, (
            f"no index in {INDEXES.name} for {query.describe()}\nadd: {need and need.as_json()}"
        )


def test_every_query_in_the_code_is_exercised(runs: dict[str, Run]) -> None:
    modules = firestore_modules(ROOT)
    names = {p.name for p in modules}
    assert {"firestore.py", "firestore_purchases.py"} <= names, names
    ran = {name for run in runs.values() for q in run.queries for name in q.functions}
    builders = {
        f"{path.name}:{line} {function}"
        for path in modules
        for function, line in query_building_functions(path).items()
        if function not in ran
    }
    assert not builders, f"these build Firestore queries no exercise runs: {sorted(builders)}"


def test_every_index_serves_a_query(runs: dict[str, Run]) -> None:
    needs = [
        need
        for run in runs.values()
        for query in run.queries
        if (need := required_index(query.query, query.aggregations)) is not None
    ]
    stale = [ix for ix in load_indexes(INDEXES) if not any(serves(ix, n) for n in needs)]
    assert not stale, f"indexes no adapter query uses (each one slows every write): {stale}"


def _query(
    *filters: tuple[str, str], order: tuple[tuple[str, str], ...] = (), group: bool = False
) -> dict[str, Any]:
    leaves = [{"fieldFilter": {"field": {"fieldPath": f}, "op": op}} for f, op in filters]
    query: dict[str, Any] = {"from": [{"collectionId": "c", "allDescendants": group}]}
    if leaves:
        query["where"] = {"compositeFilter": {"op": "AND", "filters": leaves}}
    query["orderBy"] = [{"field": {"fieldPath": f}, "direction": d} for f, d in order]
    return query


SUM_B = ({"sum": {"field": {"fieldPath": "b"}}},)


@pytest.mark.parametrize(
    ("query", "aggregations", "expected"),
    [
        pytest.param(_query(("a", "EQUAL")), (), None, id="one-equality"),
        pytest.param(_query(("a", "EQUAL"), ("b", "EQUAL")), (), None, id="equalities-merge"),
        pytest.param(_query(order=(("a", DESC),)), (), None, id="one-order"),
        pytest.param(_query(("a", "LESS_THAN"), order=(("a", DESC),)), (), None, id="one-field"),
        pytest.param(_query(order=(("__name__", ASC),)), (), None, id="by-document-id"),
        pytest.param(
            _query(("a", "EQUAL"), order=(("b", DESC),)),
            (),
            RequiredIndex("c", "COLLECTION", frozenset({("a", ASC)}), (("b", DESC),)),
            id="equality-then-order",
        ),
        pytest.param(
            _query(("a", "EQUAL"), ("b", "GREATER_THAN_OR_EQUAL")),
            (),
            RequiredIndex("c", "COLLECTION", frozenset({("a", ASC)}), (("b", ASC),)),
            id="equality-then-range",
        ),
        pytest.param(
            _query(("a", "EQUAL"), group=True),
            SUM_B,
            RequiredIndex("c", "COLLECTION_GROUP", frozenset({("a", ASC)}), (("b", ANY),)),
            id="sum-of-another-field",
        ),
    ],
)
def test_required_index(
    query: dict[str, Any], aggregations: tuple[dict[str, Any], ...], expected: RequiredIndex | None
) -> None:
    need = required_index(query, aggregations)
    assert need == expected
    if need is not None:
        assert serves(need.as_json(), need)
        # Directions matter after the equality fields.
        flipped = need.as_json()
        flipped["fields"][-1]["order"] = ASC if flipped["fields"][-1]["order"] == DESC else DESC
        assert serves(flipped, need) == (need.ordered[-1][1] == ANY)
