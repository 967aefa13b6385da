"""The card store on SQLite (the contract: store.py): a file of its own beside the outbox
(``outbox-actions.db``), one connection, its calls run one at a time in a thread (they are few and
small). One process: its locks are rows with an expiry, as Redis' are keys."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alertmanager_wecom.actions.store import (
    CODE_LIFETIME,
    ActionRecord,
    CardRecord,
    CardStore,
    state_from_json,
    state_to_json,
)
from alertmanager_wecom.outbox.sqlite.small import SmallDatabase, beside
from alertmanager_wecom.rendering.card import CardState

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    task_id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    receiver TEXT NOT NULL,
    target TEXT NOT NULL,          -- the target's spec, as stored with its jobs
    group_key TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    payload TEXT NOT NULL,         -- the notification the card shows
    card TEXT NOT NULL,            -- the card as last drawn
    state TEXT NOT NULL,           -- CardState as JSON
    resolved INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cards_by_group ON cards (receiver, group_key, resolved);
CREATE TABLE IF NOT EXISTS codes (
    task_id TEXT NOT NULL,
    code TEXT NOT NULL,
    at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, code)
);
CREATE TABLE IF NOT EXISTS acks (
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    user TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
-- Callback events taken (a hash of what makes one click one click): a captured click replayed, or
-- WeCom's retry, after a restart or to another process on this store, is recognised.
CREATE TABLE IF NOT EXISTS seen_events (
    key TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_events_by_time ON seen_events (at);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    app TEXT NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    task_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


def actions_path(outbox_path: str | Path) -> Path:
    return beside(outbox_path, "actions")


def _card(row: sqlite3.Row) -> CardRecord:
    return CardRecord(
        task_id=row["task_id"],
        app=row["app"],
        receiver=row["receiver"],
        target=row["target"],
        group_key=row["group_key"],
        job_id=row["job_id"],
        payload=row["payload"],
        card=json.loads(row["card"]),
        state=state_from_json(row["state"]),
        resolved=bool(row["resolved"]),
        created_at=row["created_at"],
    )


class SQLiteCardStore(CardStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # 0600 in a directory made 0700: response codes, who acted.
        self._db = SmallDatabase(self.path, _SCHEMA, busy_timeout=5.0)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def close(self) -> None:
        await self._db.close()

    # -- cards ------------------------------------------------------------------------------------------

    async def add_card(self, card: CardRecord) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    card.task_id,
                    card.app,
                    card.receiver,
                    card.target,
                    card.group_key,
                    card.job_id,
                    card.payload,
                    json.dumps(card.card, ensure_ascii=False),
                    state_to_json(card.state),
                    int(card.resolved),
                    card.created_at,
                ),
            )

        await self._run(add)

    async def card(self, task_id: str) -> CardRecord | None:
        def get(db: sqlite3.Connection) -> CardRecord | None:
            row = db.execute("SELECT * FROM cards WHERE task_id = ?", (task_id,)).fetchone()
            return _card(row) if row is not None else None

        return await self._run(get)

    async def open_cards(self, receiver: str, group_key: str, target: str) -> list[CardRecord]:
        """The group's cards on one target that do not show "resolved" yet, oldest first."""

        def get(db: sqlite3.Connection) -> list[CardRecord]:
            rows = db.execute(
                "SELECT * FROM cards WHERE receiver = ? AND group_key = ? AND target = ? AND resolved = 0 "
                "ORDER BY created_at",
                (receiver, group_key, target),
            ).fetchall()
            return [_card(r) for r in rows]

        return await self._run(get)

    async def redrawn(self, task_id: str, card: dict[str, Any], state: CardState, resolved: bool) -> None:
        def save(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE cards SET card = ?, state = ?, resolved = ? WHERE task_id = ?",
                (
                    json.dumps(card, ensure_ascii=False),
                    state_to_json(state),
                    int(resolved),
                    task_id,
                ),
            )

        await self._run(save)

    async def list_cards(self, limit: int = 100) -> list[CardRecord]:
        def get(db: sqlite3.Connection) -> list[CardRecord]:
            rows = db.execute("SELECT * FROM cards ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
            return [_card(r) for r in rows]

        return await self._run(get)

    # -- response codes ---------------------------------------------------------------------------------

    async def add_code(self, task_id: str, code: str, at: float) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR IGNORE INTO codes (task_id, code, at) VALUES (?, ?, ?)", (task_id, code, at)
            )

        await self._run(add)

    async def take_code(self, task_id: str, now: float) -> str | None:
        """The newest unused code of the card younger than 72 h, marked used (each works once)."""

        def take(db: sqlite3.Connection) -> str | None:
            # One statement: another connection to the file never takes the same code.
            row = db.execute(
                "UPDATE codes SET used = 1 WHERE rowid = (SELECT rowid FROM codes WHERE task_id = ? AND used = 0"
                " AND at > ? ORDER BY at DESC LIMIT 1) RETURNING code",
                (task_id, now - CODE_LIFETIME),
            ).fetchone()
            return str(row["code"]) if row is not None else None

        return await self._run(take)

    # -- acknowledgements -------------------------------------------------------------------------------

    async def ack(self, receiver: str, group_key: str, user: str, at: float) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?)", (receiver, group_key, user, at))

        await self._run(add)

    async def ack_of(self, receiver: str, group_key: str) -> tuple[str, float] | None:
        def get(db: sqlite3.Connection) -> tuple[str, float] | None:
            row = db.execute(
                "SELECT user, at FROM acks WHERE receiver = ? AND group_key = ?", (receiver, group_key)
            ).fetchone()
            return (str(row["user"]), float(row["at"])) if row is not None else None

        return await self._run(get)

    async def clear_ack(self, receiver: str, group_key: str) -> None:
        """A resolved group starts afresh: its next firing is nobody's yet."""

        def clear(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM acks WHERE receiver = ? AND group_key = ?", (receiver, group_key))

        await self._run(clear)

    # -- replay protection ------------------------------------------------------------------------------

    async def first_time(self, key: str, at: float, keep: float) -> bool:
        """Whether the event `key` is new (then it is remembered); events older than `keep` seconds
        are forgotten (a replay that old is refused by its timestamp anyway)."""

        def seen(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM seen_events WHERE at < ?", (at - keep,))
            cursor = db.execute("INSERT OR IGNORE INTO seen_events (key, at) VALUES (?, ?)", (key, at))
            return cursor.rowcount == 1

        return await self._run(seen)

    # -- audit ------------------------------------------------------------------------------------------

    async def record(
        self, at: float, app: str, user: str, action: str, task_id: str, outcome: str, detail: str
    ) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO actions (at, app, user, action, task_id, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at, app, user, action, task_id, outcome, detail),
            )

        await self._run(add)

    async def actions(self, limit: int = 100) -> list[ActionRecord]:
        def get(db: sqlite3.Connection) -> list[ActionRecord]:
            rows = db.execute("SELECT * FROM actions ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [ActionRecord(**dict(r)) for r in rows]

        return await self._run(get)

    # -- locks --------------------------------------------------------------------------------------------

    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        def take(db: sqlite3.Connection) -> bool:
            now = time.time()
            db.execute("DELETE FROM locks WHERE name = ? AND until < ?", (name, now))
            cursor = db.execute(
                "INSERT OR IGNORE INTO locks (name, owner, until) VALUES (?, ?, ?)",
                (name, owner, now + seconds),
            )
            return cursor.rowcount == 1

        return await self._run(take)

    async def unlock(self, name: str, owner: str) -> None:
        await self._run(
            lambda db: db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))
        )

    # -- retention ----------------------------------------------------------------------------------------

    async def purge(self, now: float, card_keep: float, audit_keep: float) -> int:
        cards_before = now - CODE_LIFETIME - card_keep

        def purge(db: sqlite3.Connection) -> int:
            db.execute(
                "DELETE FROM codes WHERE task_id IN (SELECT task_id FROM cards WHERE created_at < ?)",
                (cards_before,),
            )
            db.execute("DELETE FROM codes WHERE at < ?", (now - CODE_LIFETIME,))
            gone = db.execute("DELETE FROM cards WHERE created_at < ?", (cards_before,)).rowcount
            db.execute("DELETE FROM acks WHERE at < ?", (cards_before,))
            db.execute("DELETE FROM actions WHERE at < ?", (now - audit_keep,))
            db.execute("DELETE FROM locks WHERE until < ?", (now,))
            return int(gone)

        return await self._run(purge)
