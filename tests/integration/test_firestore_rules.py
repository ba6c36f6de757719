"""firestore.rules on the official emulator, through its REST API.

Three clients: the owner of the seeded data, another signed-in user, and a
signed-out client. Each reads (get), writes (create, update, delete) and
queries every collection the adapter uses; every case names its expected
outcome. The data is written by the real Firestore adapter, so the rules are
checked against the documents the app actually stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from services.ledger.model import Operation, OpKind, TxnType, format_time
from services.operations.model import AuditRecord
from services.payments.model import Purchase, PurchaseLimits, PurchaseState, SecurityAlert, User
from services.session_model import SessionRecord
from services.store import open_store
from services.store.port import Store
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.firestore_queries import collections_used, firestore_modules
from tests.support.firestore_rest import FirestoreRest, decode_fields, equals_filter
from tests.support.records import purchase_record

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "firestore.rules"
PROJECT = "demo-rules"
OWNER, OTHER, STRANGER = "alice", "bob", "carol"  # STRANGER only appears inside gifts
ACTORS = ("owner", "other", "signed_out")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# Every seeded document and the clients allowed to get it; all others get 403.
READERS: dict[str, set[str]] = {
    "account": {"owner"},
    "other_account": {"other"},
    "shard": {"owner"},  # a part of the owner's balance, written by a credit
    "other_shard": {"other"},
    "entry": {"owner"},  # the owner's side of a credit
    "system_entry": set(),  # the issuance side of the same credit: no user_id
    "sent_entry": {"owner"},  # the owner's side of a transfer to OTHER
    "received_entry": {"other"},  # OTHER's side of that transfer
    "purchase": {"owner"},  # bought by and for the owner
    "gift_sent": {"owner"},  # bought by the owner for STRANGER
    "gift_received": {"owner"},  # bought by STRANGER for the owner
    "other_purchase": {"other"},
    "journal": set(),  # whole transactions also hold the other party's entries
    "user": set(),
    "username": set(),
    "event": set(),
    "alert": set(),  # carries the owner's user_id, still operator-only
    "setting": set(),
    "health": set(),
    "event_failure": set(),
    "audit": set(),
    "session": set(),  # server-side sign-in sessions: never a client's
    "limits": set(),  # a buyer's recent starts, for the purchase limits: server-only
}

# One seeded document of the owner per collection, the target of update/delete.
WRITE_TARGETS: dict[str, str] = {
    "accounts": "account",
    "shards": "shard",
    "journal": "journal",
    "entries": "entry",
    "purchases": "purchase",
    "users": "user",
    "usernames": "username",
    "stripe_events": "event",
    "security_alerts": "alert",
    "app_settings": "setting",
    "_health": "health",
    "event_failures": "event_failure",
    "audit": "audit",
    "sessions": "session",
    "purchase_limits": "limits",
}
OWNERSHIP_FIELDS = ("id", "user_id", "buyer_id")
SUBCOLLECTIONS = {"shards"}  # under accounts/{uid}

Query = dict[str, Any]


def _select(collection: str, *filters: dict[str, Any], **extra: Any) -> Query:
    query: Query = {"from": [{"collectionId": collection}], **extra}
    if len(filters) == 1:
        query["where"] = filters[0]
    elif filters:
        query["where"] = {"compositeFilter": {"op": "AND", "filters": list(filters)}}
    return query


def _either(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"compositeFilter": {"op": "OR", "filters": list(filters)}}


def _unfiltered(collection: str) -> Callable[[str, str], Query]:
    return lambda _, __: _select(collection)


@dataclass(frozen=True)
class ListCase:
    name: str
    build: Callable[[str, str], Query]  # (my uid, someone else's uid) -> structured query
    results: dict[str, set[str]]  # actor -> documents returned; actors missing get 403


LIST_CASES = [
    ListCase(
        "purchases-bought",
        lambda me, _: _select("purchases", equals_filter("buyer_id", me)),
        {"owner": {"purchase", "gift_sent"}, "other": {"other_purchase"}},
    ),
    ListCase(
        "purchases-received",
        lambda me, _: _select("purchases", equals_filter("user_id", me)),
        {"owner": {"purchase", "gift_received"}, "other": {"other_purchase"}},
    ),
    ListCase(
        "purchases-bought-or-received",
        lambda me, _: _select(
            "purchases", _either(equals_filter("buyer_id", me), equals_filter("user_id", me))
        ),
        {"owner": {"purchase", "gift_sent", "gift_received"}, "other": {"other_purchase"}},
    ),
    ListCase(
        "purchases-of-someone-else",
        lambda _, them: _select("purchases", equals_filter("buyer_id", them)),
        {},
    ),
    ListCase(
        "purchases-recipient-someone-else",
        lambda _, them: _select("purchases", equals_filter("user_id", them)),
        {},
    ),
    ListCase(
        "entries-mine",
        lambda me, _: _select("entries", equals_filter("user_id", me)),
        {"owner": {"entry", "sent_entry"}, "other": {"received_entry"}},
    ),
    ListCase(  # the history page's query shape: newest first
        "entries-history",
        lambda me, _: _select(
            "entries",
            equals_filter("user_id", me),
            orderBy=[
                {"field": {"fieldPath": "at"}, "direction": "DESCENDING"},
            ],
        ),
        {"owner": {"entry", "sent_entry"}, "other": {"received_entry"}},
    ),
    ListCase(
        "entries-by-type",
        lambda me, _: _select(
            "entries", equals_filter("user_id", me), equals_filter("type", "transfer")
        ),
        {"owner": {"sent_entry"}, "other": {"received_entry"}},
    ),
    ListCase(
        "entries-of-someone-else",
        lambda _, them: _select("entries", equals_filter("user_id", them)),
        {},
    ),
    ListCase(
        "entries-system-account",
        lambda _, __: _select("entries", equals_filter("account", "system:issuance")),
        {},
    ),
    ListCase(  # accounts are read by id only
        "accounts-mine",
        lambda me, _: _select("accounts", equals_filter("user_id", me)),
        {},
    ),
    ListCase(
        "alerts-mine",
        lambda me, _: _select("security_alerts", equals_filter("user_id", me)),
        {},
    ),
    *(ListCase(f"{c}-unfiltered", _unfiltered(c), {}) for c in WRITE_TARGETS),
]


@dataclass
class Seeded:
    emulator: FirestoreEmulator
    admin: FirestoreRest
    paths: dict[str, str]  # READERS key -> collection/id

    def client(self, actor: str) -> FirestoreRest:
        if actor == "owner":
            return FirestoreRest.signed_in(self.emulator.host, PROJECT, OWNER)
        if actor == "other":
            return FirestoreRest.signed_in(self.emulator.host, PROJECT, OTHER)
        return FirestoreRest.signed_out(self.emulator.host, PROJECT)

    def stored(self, path: str) -> dict[str, object] | None:
        response = self.admin.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return decode_fields(response.json().get("fields", {}))


def _purchase(purchase_id: str, buyer_id: str, user_id: str) -> Purchase:
    return purchase_record(
        purchase_id,
        buyer_id,
        NOW,
        PurchaseState.PAID,
        user_id=user_id,
        pack_id="starter",
        tokens=100,
        amount=499,
        session_id=f"cs_test_{purchase_id}",
        gift_from=buyer_id if buyer_id != user_id else None,
    )


def _seed_through_adapter(store: Store) -> dict[str, str]:
    for uid in (OWNER, OTHER):
        user = User(id=uid, email=f"{uid}@example.com", username=uid.title())
        store.ensure_user(user, NOW)
    credit = store.apply(
        Operation(OpKind.CREDIT, "rules-credit", OWNER, 100, TxnType.PURCHASE), NOW
    )
    transfer = store.apply(
        Operation(OpKind.TRANSFER, "rules-tip", OWNER, 10, TxnType.TRANSFER, counterparty_id=OTHER),
        NOW,
    )
    purchases = {
        "purchase": _purchase("p-own", OWNER, OWNER),
        "gift_sent": _purchase("p-gift-sent", OWNER, STRANGER),
        "gift_received": _purchase("p-gift-received", STRANGER, OWNER),
        "other_purchase": _purchase("p-other", OTHER, OTHER),
    }
    for name, purchase in purchases.items():
        # The limited start writes the owner's purchase_limits record.
        store.start_purchase(purchase, PurchaseLimits() if name == "purchase" else None, NOW)
    store.record_event("evt_rules", "checkout.session.completed", "credited", NOW)
    alert = SecurityAlert(
        type="amount_mismatch",
        severity="warning",
        user_id=OWNER,
        purchase_id="p-own",
        created_at=format_time(NOW),
        id="alert-rules",
    )
    store.add_alert(alert)
    store.put_setting("stripe_prices", {"starter": "price_rules"})
    store.record_event_failure("evt_failed", "charge.refunded", "StorageUnavailable", NOW)
    audit = AuditRecord(
        "audit-rules", "admin", "grant_tokens", f"user:{OWNER}", "test", format_time(NOW)
    )
    store.add_audit(audit)
    store.create_session(
        SessionRecord(
            id="session-rules",
            user_id=OWNER,
            source="firebase",
            created_at=format_time(NOW),
            expires_at=format_time(NOW),
            checked_at=format_time(NOW),
        )
    )

    def shard_of(user_id: str) -> str:
        (shard,) = [ref for ref in store.shard_refs(user_id) if ref.get().exists]  # type: ignore[attr-defined]
        return str(shard.path)

    def entry_of(txn_entries: Any, user_id: str | None) -> str:
        (entry,) = [e for e in txn_entries if e.user_id == user_id]
        return f"entries/{entry.id}"

    return {
        "account": f"accounts/{OWNER}",
        "other_account": f"accounts/{OTHER}",
        "shard": shard_of(OWNER),
        "other_shard": shard_of(OTHER),
        "entry": entry_of(credit.entries, OWNER),
        "system_entry": entry_of(credit.entries, None),
        "sent_entry": entry_of(transfer.entries, OWNER),
        "received_entry": entry_of(transfer.entries, OTHER),
        **{name: f"purchases/{p.id}" for name, p in purchases.items()},
        "journal": f"journal/{credit.id}",
        "user": f"users/{OWNER}",
        "username": f"usernames/{OWNER}",
        "event": "stripe_events/evt_rules",
        "alert": "security_alerts/alert-rules",
        "setting": "app_settings/stripe_prices",
        "health": "_health/ping",
        "event_failure": "event_failures/evt_failed",
        "audit": "audit/audit-rules",
        "session": "sessions/session-rules",
        "limits": f"purchase_limits/{OWNER}",
    }


@pytest.fixture(scope="module")
def seeded() -> Iterator[Seeded]:
    """Its own emulator, started with the repository's rules, seeded once."""
    emulator = FirestoreEmulator(rules=RULES)
    try:
        emulator.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start the Firestore emulator with {RULES}: {exc}", pytrace=False)
    try:
        with pytest.MonkeyPatch.context() as env:
            # The adapter's client talks to this emulator as its administrator.
            env.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
            store = open_store(f"firestore://{PROJECT}")
            try:
                paths = _seed_through_adapter(store)
            finally:
                store.close()
        admin = FirestoreRest.admin(emulator.host, PROJECT)
        # ping() only reads its document; write one so clients have something to try.
        admin.create("_health", "ping", {"ok": True}).raise_for_status()
        yield Seeded(emulator, admin, paths)
    finally:
        emulator.stop()


def _assert_denied(response: requests.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_cases_cover_every_collection_the_adapter_uses(seeded: Seeded) -> None:
    in_code = collections_used(firestore_modules(ROOT))
    assert set(WRITE_TARGETS) == in_code
    # What the adapter wrote while seeding (and _health: ping() only reads it, so the fixture
    # writes it).
    assert seeded.admin.collection_ids() == in_code - SUBCOLLECTIONS
    assert {path.split("/")[-2] for path in seeded.paths.values()} == in_code
    assert set(seeded.paths) == set(READERS)


@pytest.mark.parametrize(
    ("actor", "doc"),
    [
        pytest.param(a, d, id=f"{a}-get-{d}-{'allow' if a in READERS[d] else 'deny'}")
        for d in READERS
        for a in ACTORS
    ],
)
def test_get(seeded: Seeded, actor: str, doc: str) -> None:
    path = seeded.paths[doc]
    response = seeded.client(actor).get(path)
    if actor not in READERS[doc]:
        _assert_denied(response)
        return
    assert response.status_code == 200, response.text
    fields = decode_fields(response.json()["fields"])
    assert fields == seeded.stored(path)
    uid = OWNER if actor == "owner" else OTHER
    assert uid in {fields.get("user_id"), fields.get("buyer_id")}


def _tampered(data: dict[str, object], uid: str) -> dict[str, object]:
    """The document as a client would like it: claimed as theirs, with a fat balance."""
    changed = {**data, "tampered": True}
    for name in OWNERSHIP_FIELDS:
        if name in changed:
            changed[name] = uid
    if "balance" in changed:
        changed["balance"] = 1_000_000
    return changed


@pytest.mark.parametrize(
    ("actor", "operation", "collection"),
    [
        pytest.param(a, op, c, id=f"{a}-{op}-{c}-deny")
        for c in WRITE_TARGETS
        for op in ("create", "update", "delete")
        for a in ACTORS
    ],
)
def test_write_denied(seeded: Seeded, actor: str, operation: str, collection: str) -> None:
    path = seeded.paths[WRITE_TARGETS[collection]]
    before = seeded.stored(path)
    assert before is not None
    uid = OTHER if actor == "other" else OWNER
    client = seeded.client(actor)
    parent = path.rsplit("/", 1)[0]
    created = f"{parent}/new-{actor}"
    try:
        if operation == "create":
            response = client.create(parent, f"new-{actor}", _tampered(before, uid))
        elif operation == "update":
            response = client.update(path, _tampered(before, uid))
        else:
            response = client.delete(path)
        _assert_denied(response)
        assert seeded.stored(path) == before
        assert seeded.stored(created) is None
    finally:
        # Should a write get through, undo it so that the other cases still see the seed.
        seeded.admin.put(path, before).raise_for_status()
        seeded.admin.delete(created).raise_for_status()


def test_new_user_cannot_create_their_own_account(seeded: Seeded) -> None:
    newcomer = "dave"
    client = FirestoreRest.signed_in(seeded.emulator.host, PROJECT, newcomer)
    account = {"user_id": newcomer, "balance": 1_000_000, "debt": 0, "seq": 0}
    _assert_denied(client.create("accounts", newcomer, account))
    assert seeded.stored(f"accounts/{newcomer}") is None


@pytest.mark.parametrize(
    ("actor", "case"),
    [
        pytest.param(a, c, id=f"{a}-list-{c.name}-{'allow' if a in c.results else 'deny'}")
        for c in LIST_CASES
        for a in ACTORS
    ],
)
def test_list(seeded: Seeded, actor: str, case: ListCase) -> None:
    # A signed-out client asks for the owner's data; "someone else" is never the caller.
    me, them = (OTHER, OWNER) if actor == "other" else (OWNER, OTHER)
    client = seeded.client(actor)
    response = client.run_query(case.build(me, them))
    if actor not in case.results:
        _assert_denied(response)
        return
    assert response.status_code == 200, response.text
    documents = [item["document"] for item in response.json() if "document" in item]
    got = {client.document_path(d["name"]): decode_fields(d["fields"]) for d in documents}
    expected = {seeded.paths[name] for name in case.results[actor]}
    assert set(got) == expected
    for path, fields in got.items():
        assert fields == seeded.stored(path)
