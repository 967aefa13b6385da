"""Opening the outbox the config names: SQLite (one process, a local file) or Redis (replicas)."""

from __future__ import annotations

from collections.abc import Callable

from alertmanager_wecom.config import StorageSettings
from alertmanager_wecom.outbox.base import Outbox


def open_outbox(storage: StorageSettings, on_ingest_exit: Callable[[], None] | None = None) -> Outbox:
    """The backend `storage` names. `on_ingest_exit`: called when SQLite's ingest child died and was
    started again (a metric)."""
    if storage.backend == "redis":
        from alertmanager_wecom.outbox.redis import RedisOutbox

        return RedisOutbox(**storage.redis_connection(), min_replicas=storage.min_replicas)
    from alertmanager_wecom.outbox.sqlite.store import SQLiteOutbox

    return SQLiteOutbox(
        storage.path,
        synchronous=storage.synchronous,
        max_size_mb=storage.max_size_mb,
        on_ingest_exit=on_ingest_exit,
    )
