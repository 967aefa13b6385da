"""Opening the card store beside the outbox the config names (store.py has the contract)."""

from __future__ import annotations

from alertmanager_wecom.actions.sqlite_store import SQLiteCardStore, actions_path
from alertmanager_wecom.actions.store import CardStore
from alertmanager_wecom.config import StorageSettings


def open_card_store(storage: StorageSettings) -> CardStore:
    """The card store beside the outbox `storage` names: the same Redis (and key prefix), or a SQLite
    file beside the outbox file."""
    if storage.backend == "redis":
        # Imported for this backend only: redis-py imports OpenTelemetry's SDK wherever that is
        # installed, and with tracing off nothing of it may be (tests/test_tracing.py).
        from alertmanager_wecom.actions.redis_store import RedisCardStore

        return RedisCardStore(**storage.redis_connection())
    return SQLiteCardStore(actions_path(storage.path))
