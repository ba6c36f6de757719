"""The storage port and its adapters; ``open_store`` picks one from a URL."""

from __future__ import annotations

from urllib.parse import parse_qsl

from services.store.port import LedgerStore, Store


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db`` or ``firestore://<project-id>``."""
    if url.startswith("sqlite:///"):
        from services.store.sqlite import SqliteStore

        # sqlite:///path?busy_timeout_ms=N shortens the wait for a locked database.
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        timeout = dict(parse_qsl(query)).get("busy_timeout_ms")
        return SqliteStore(path) if timeout is None else SqliteStore(path, int(timeout))
    if url.startswith("firestore://"):
        from services.store.firestore import FirestoreStore

        return FirestoreStore(url.removeprefix("firestore://"))
    raise ValueError(f"STORE_URL must start with sqlite:/// or firestore://, got {url!r}")


__all__ = ["LedgerStore", "Store", "open_store"]
