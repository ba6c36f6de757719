"""Firestore transactions that begin with their first read: one round trip fewer.

The client library begins every transaction with a BeginTransaction RPC before
its first read. Firestore can instead begin it inside that read: a
BatchGetDocuments with ``new_transaction`` reads the documents in a new
transaction, and its first answer carries the transaction's id. Every unit of
work here starts with one batched read, so each transaction costs its reads and
its commit, and nothing else. A transaction whose first read is a query, or a
single-document ``get``, and a retry of an aborted commit, which must carry the
aborted transaction's id to keep its place in line, still begin with their own RPC.

``run`` plays the part of the library's ``transactional``: it runs the body,
commits, retries a commit that Firestore aborted for contention at once with the
aborted transaction's id (which keeps its place in line, as the library does),
and rolls back whatever began when the body or the commit fails otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.types import common
from google.cloud.firestore_v1.types.write import Write

from services.store.firestore_reads import snapshot
from services.store.firestore_rpc import BatchGetRequest, CommitRequest, direct_rpcs
from services.store.firestore_writes import create_write, set_write, update_write

T = TypeVar("T")
# Immediate retries of an aborted commit, as the library's ``transactional`` makes.
COMMIT_ATTEMPTS = 5


class LazyTransaction(firestore.Transaction):
    """A transaction that begins in its first ``get_all``."""

    def __init__(self, client: firestore.Client, read_only: bool, retry_id: bytes | None) -> None:
        super().__init__(client, read_only=read_only)
        self._retry_id = retry_id
        self.write_results: list[Any] = []

    def _options(self) -> common.TransactionOptions:
        # None for a first read-write attempt, which BeginTransaction takes as the default.
        options = self._options_protobuf(self._retry_id)
        if options is None:
            read_write = common.TransactionOptions.ReadWrite()
            return common.TransactionOptions(read_write=read_write)
        return options

    # create, set and update are the library's, with the Write built by firestore_writes
    # (the same one); a set merging named fields and an update with an option are left
    # to the library.
    def create(self, reference: Any, document_data: dict[str, Any]) -> None:
        self._add(reference, create_write(reference._document_path, document_data))

    def set(self, reference: Any, document_data: dict[str, Any], merge: Any = False) -> None:
        if merge is not True and merge is not False:
            super().set(reference, document_data, merge=merge)
        else:
            self._add(reference, set_write(reference._document_path, document_data, merge))

    def update(self, reference: Any, field_updates: dict[str, Any], option: Any = None) -> None:
        if option is not None:
            super().update(reference, field_updates, option=option)
        else:
            self._add(reference, update_write(reference._document_path, field_updates))

    def _add(self, reference: Any, write_pb: Any) -> None:
        """What the library's batch does with a write it built."""
        self._document_references[reference._document_path] = reference
        self._add_write_pbs([write_pb])

    def begin_now(self) -> None:
        """Begin with an RPC of its own, unless begun: for a first read that is not a get_all."""
        if not self.in_progress:
            self._begin(retry_id=self._retry_id)

    def get_all(self, references: list[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        # A retry begins with its own RPC: only BeginTransaction's retry_transaction keeps
        # the aborted transaction's place in line (the emulator ignores it in a read:
        # one buyer's 16 checkouts from 2 processes then ran out of time 3-10x as often).
        if self.in_progress or self._retry_id is not None or args or set(kwargs) - {"timeout"}:
            self.begin_now()
            return super().get_all(references, *args, **kwargs)
        return iter(self._begin_in_read(references, kwargs.get("timeout")))

    def _begin_in_read(self, references: list[Any], timeout: float | None) -> list[Any]:
        """Read ``references`` in a new transaction, whose id comes with the first answer."""
        client = self._client
        by_path = {ref._document_path: ref for ref in references}
        request = BatchGetRequest(
            database=client._database_string,
            documents=list(by_path),
            new_transaction=common.TransactionOptions.pb(self._options()),
        )
        snapshots = []
        for answer in direct_rpcs(client).batch_get(request, retry=None, timeout=timeout):
            if answer.transaction:
                self._id = answer.transaction
            if answer.WhichOneof("result") is not None:  # the first may carry only the id
                snapshots.append(snapshot(answer, by_path, client))
        if not self.in_progress:
            raise gexc.InternalServerError("Firestore began no transaction")  # type: ignore[no-untyped-call]
        return snapshots

    def get(self, ref_or_query: Any, *args: Any, **kwargs: Any) -> Any:
        self.begin_now()
        return super().get(ref_or_query, *args, **kwargs)

    def commit_or_end(self) -> None:
        """Commit the writes; a transaction that wrote nothing rolls back, which releases
        its locks, as Google advises for read-only transactions. Writes with no read
        before them commit as one atomic batch, without a transaction."""
        if not self._write_pbs:
            if self.in_progress:
                self._rollback()
            return
        client = self._client
        request = CommitRequest(
            database=client._database_string,
            writes=[Write.pb(write) for write in self._write_pbs],
        )
        if self.in_progress:
            request.transaction = self._id
        answer = direct_rpcs(client).commit(request)
        self._clean_up()
        self.write_results = list(answer.write_results)

    def abandon(self) -> None:
        """Roll back what began; the error that led here is the one to report."""
        if self.in_progress:
            try:
                self._rollback()
            except gexc.GoogleAPIError:  # a spent time budget among them
                self._clean_up()


Body = Callable[[LazyTransaction], T]


def run(
    client: firestore.Client, body: Body[T], read_only: bool = False
) -> tuple[T, LazyTransaction]:
    """``body`` in a transaction, committed; the transaction comes back for its commit time."""
    retry_id: bytes | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        transaction = LazyTransaction(client, read_only, retry_id)
        try:
            result = body(transaction)
        except BaseException:
            transaction.abandon()
            raise
        began = transaction.id
        try:
            transaction.commit_or_end()
        except gexc.Aborted:
            transaction._clean_up()  # Firestore ended it; nothing to roll back
            if read_only or attempt == COMMIT_ATTEMPTS - 1:
                raise
            retry_id = retry_id or began
            continue
        except BaseException:
            transaction.abandon()
            raise
        return result, transaction
    raise AssertionError("unreachable")
