"""Opening the on-call store beside the outbox the config names (store.py has the contract)."""

from __future__ import annotations

from alertmanager_wecom.config import StorageSettings
from alertmanager_wecom.oncall.sqlite_store import SQLiteOncallStore, oncall_path
from alertmanager_wecom.oncall.store import OncallStore


def open_oncall_store(storage: StorageSettings) -> OncallStore:
    """The on-call store beside the outbox `storage` names: the same Redis (and key prefix), or a SQLite
    file beside the outbox file."""
    if storage.backend == "redis":
        # Imported for this backend only: redis-py imports OpenTelemetry's SDK wherever that is
        # installed, and with tracing off nothing of it may be (tests/test_tracing.py).
        from alertmanager_wecom.oncall.redis_store import RedisOncallStore

        return RedisOncallStore(**storage.redis_connection())
    return SQLiteOncallStore(oncall_path(storage.path))
