"""`SmallDatabase`: a small SQLite file of the service's own beside the outbox (the card store's, the
on-call store's): 0600 in a 0700 directory, WAL, synchronous FULL, its schema made at open; one
connection, its calls run one at a time in a thread (they are few and small, never on the webhook's
path). Two processes may open the same file: a write transaction takes the write lock at its start."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alertmanager_wecom.outbox.sqlite.files import private_database

T = TypeVar("T")


def beside(outbox_path: str | Path, name: str) -> Path:
    """The file `<outbox stem>-<name>.db` beside the outbox file (outbox.db → outbox-actions.db)."""
    path = Path(outbox_path)
    return path.with_name(f"{path.stem}-{name}.db")


class SmallDatabase:
    def __init__(self, path: str | Path, schema: str, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        private_database(self.path)
        # busy_timeout: another process holding the write lock is waited for (its transactions are short).
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema)
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the connection, in a thread, one call at a time (autocommit: each statement alone)."""

        def locked() -> T:
            with self._lock:
                return fn(self._db)

        return await asyncio.to_thread(locked)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """`fn` in one transaction. One that writes holds the write lock from its start (IMMEDIATE: a
        read that decides a write is never overtaken by another process's write in between)."""

        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self.run(transaction)

    async def close(self) -> None:
        await self.run(lambda db: db.close())
