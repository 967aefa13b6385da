"""open_oncall_store (oncall/opening.py): the on-call store lives where the outbox does, on the backend
`storage` names, and the SQLite one imports nothing of redis-py (which imports OpenTelemetry)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from alertmanager_wecom.config import StorageSettings
from alertmanager_wecom.oncall.opening import open_oncall_store
from alertmanager_wecom.oncall.redis_store import RedisOncallStore
from alertmanager_wecom.oncall.sqlite_store import SQLiteOncallStore

pytestmark = pytest.mark.anyio
NOW = 1_764_859_200.5


async def test_sqlite_opens_a_file_beside_the_outbox(tmp_path: Path) -> None:
    store = open_oncall_store(StorageSettings(path=str(tmp_path / "data" / "outbox.db")))
    try:
        assert isinstance(store, SQLiteOncallStore)
        assert store.path == tmp_path / "data" / "outbox-oncall.db"
        opened, _ = await store.open_incident("default", "g", "t", None, NOW)
    finally:
        await store.close()
    again = SQLiteOncallStore(tmp_path / "data" / "outbox-oncall.db")
    try:
        assert await again.incident(opened.id) == opened
    finally:
        await again.close()


async def test_redis_opens_the_outboxs_redis_under_its_prefix(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    store = open_oncall_store(StorageSettings(backend="redis", url=redis_url, key_prefix=prefix))
    direct = RedisOncallStore(redis_url, prefix)
    try:
        assert isinstance(store, RedisOncallStore) and store.prefix == f"{prefix}:oncall"
        opened, _ = await store.open_incident("default", "g", "t", None, NOW)
        assert await direct.incident(opened.id) == opened
    finally:
        await store.close()
        await direct.close()


_OPEN_SQLITE = """
import asyncio, json, sys
from alertmanager_wecom.config import StorageSettings
from alertmanager_wecom.oncall.opening import open_oncall_store

async def main():
    store = open_oncall_store(StorageSettings(path=sys.argv[1]))
    await store.open_incident("default", "g", "t", None, 1.0)
    await store.close()

asyncio.run(main())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"redis", "opentelemetry"})))
"""


def test_the_sqlite_store_imports_neither_redis_nor_opentelemetry(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _OPEN_SQLITE, str(tmp_path / "outbox.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []
