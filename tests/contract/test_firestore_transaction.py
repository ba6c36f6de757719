"""Transactions that begin in their first batched read (services/store/firestore_transaction.py),
on the emulator, counted on the wire by bench.rpc_bench's interceptor.

A read-modify-write is one BatchGetDocuments and one Commit; it still isolates (two
clients incrementing one document lose no increment); a body that fails rolls back,
so the document it read is free at once; a first read that is a query begins with its
own RPC; writes with no read before them commit as one atomic batch.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bench.rpc_bench import RpcCounter
from services.store import firestore_transaction
from services.store.firestore_client import open_client
from tests.support.firestore_emulator import FirestoreEmulator

PROJECT = "demo-lazy-transactions"
INCREMENTS = 4  # by each of two clients (the emulator takes seconds per conflict)
OUTER_ATTEMPTS = 8


@pytest.fixture
def counted(firestore_emulator: FirestoreEmulator) -> Iterator[tuple[firestore.Client, RpcCounter]]:
    counter = RpcCounter()
    client = open_client(PROJECT, counter)
    yield client, counter
    client.close()  # type: ignore[no-untyped-call]


def fresh(client: firestore.Client) -> Any:
    return client.collection("lazy").document(uuid.uuid4().hex)


def add_one(ref: Any) -> firestore_transaction.Body[int]:
    def body(transaction: firestore_transaction.LazyTransaction) -> int:
        snap = next(iter(transaction.get_all([ref])))
        value = int((snap.to_dict() or {}).get("n", 0)) + 1
        transaction.set(ref, {"n": value})
        return value

    return body


def test_a_read_modify_write_is_one_batched_read_and_one_commit(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    client, counter = counted
    ref = fresh(client)
    with counter.measuring() as rpcs:
        value, transaction = firestore_transaction.run(client, add_one(ref))
    assert value == 1
    assert dict(rpcs) == {"BatchGetDocuments": 1, "Commit": 1}
    assert transaction.write_results and ref.get().to_dict() == {"n": 1}


def test_two_clients_incrementing_one_document_lose_no_increment(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    first, _ = counted
    second = open_client(PROJECT)
    ref = fresh(first)

    def increments(client: firestore.Client) -> list[int]:
        # One thread per client, as the store's own locks queue one process's
        # writers; an abort that outlasts run's retries is retried after a pause.
        made = []
        for _ in range(INCREMENTS):
            for attempt in range(OUTER_ATTEMPTS):
                try:
                    made.append(firestore_transaction.run(client, add_one(ref))[0])
                    break
                except gexc.Aborted:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
            else:
                raise AssertionError("an increment never committed")
        return made

    try:
        with ThreadPoolExecutor(2) as pool:
            values = sorted(v for made in pool.map(increments, (first, second)) for v in made)
    finally:
        second.close()  # type: ignore[no-untyped-call]
    assert values == list(range(1, 2 * INCREMENTS + 1))
    assert ref.get().to_dict() == {"n": 2 * INCREMENTS}


def test_a_failing_body_rolls_back_and_frees_what_it_read(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    client, counter = counted
    ref = fresh(client)

    def fails(transaction: firestore_transaction.LazyTransaction) -> None:
        list(transaction.get_all([ref]))
        transaction.set(ref, {"n": 99})
        raise RuntimeError("refused after reading")

    with counter.measuring() as rpcs, pytest.raises(RuntimeError, match="refused"):
        firestore_transaction.run(client, fails)
    assert dict(rpcs) == {"BatchGetDocuments": 1, "Rollback": 1}
    assert not ref.get().exists
    assert firestore_transaction.run(client, add_one(ref))[0] == 1  # not left locked


def test_a_query_first_begins_with_its_own_rpc(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    client, counter = counted
    marker = uuid.uuid4().hex
    fresh(client).set({"marker": marker})
    query = client.collection("lazy").where(filter=FieldFilter("marker", "==", marker))

    def count(transaction: firestore_transaction.LazyTransaction) -> int:
        return len(list(transaction.get(query)))

    with counter.measuring() as rpcs:
        found, _ = firestore_transaction.run(client, count, read_only=True)
    assert found == 1
    assert dict(rpcs) == {"BeginTransaction": 1, "RunQuery": 1, "Rollback": 1}


def test_writes_without_a_read_commit_together_without_a_transaction(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    client, counter = counted
    refs = [fresh(client) for _ in range(3)]

    def blind(transaction: firestore_transaction.LazyTransaction) -> None:
        for n, ref in enumerate(refs):
            transaction.create(ref, {"n": n})

    with counter.measuring() as rpcs:
        firestore_transaction.run(client, blind)
    assert dict(rpcs) == {"Commit": 1}
    assert [ref.get().to_dict() for ref in refs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    refs[2].delete()
    with pytest.raises(gexc.Conflict):
        firestore_transaction.run(client, blind)  # one create fails: none is made again
    assert not refs[2].get().exists


def test_a_retry_begins_with_its_own_rpc_carrying_the_aborted_id(
    counted: tuple[firestore.Client, RpcCounter],
) -> None:
    client, counter = counted
    ref = fresh(client)
    first = firestore_transaction.LazyTransaction(client, read_only=False, retry_id=None)
    list(first.get_all([ref]))
    aborted_id = first.id
    first.abandon()
    with counter.measuring() as rpcs:
        retry = firestore_transaction.LazyTransaction(client, read_only=False, retry_id=aborted_id)
        list(retry.get_all([ref]))
        retry.abandon()
    assert dict(rpcs) == {"BeginTransaction": 1, "BatchGetDocuments": 1, "Rollback": 1}
