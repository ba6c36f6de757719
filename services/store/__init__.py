"""The storage port and its adapters; ``open_store`` picks one from a URL."""

from __future__ import annotations

from services.store.port import LedgerStore, Store


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db`` or ``firestore://<project-id>``."""
    if url.startswith("sqlite:///"):
        from services.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith("firestore://"):
        from services.store.firestore import FirestoreStore

        return FirestoreStore(url.removeprefix("firestore://"))
    raise ValueError(f"STORE_URL must start with sqlite:/// or firestore://, got {url!r}")


__all__ = ["LedgerStore", "Store", "open_store"]
