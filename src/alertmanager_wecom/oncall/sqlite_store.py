"""The on-call store on SQLite (the contract: store.py): a file of its own beside the outbox
(``outbox-oncall.db``), one connection, its calls run one at a time in a thread (they are few and
small). Each step that must not interleave with another connection's (a second process on the same
file) is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock makes it one step, and the partial
unique index keeps one open incident per group whatever happens.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alertmanager_wecom.oncall.store import (
    MOST_EVENTS,
    Incident,
    IncidentEvent,
    OncallStore,
    Override,
    group_id,
)
from alertmanager_wecom.outbox.sqlite.small import SmallDatabase, beside

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS overrides (
    id TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    user TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS overrides_by_end ON overrides ("end");
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    group_id TEXT NOT NULL,
    title TEXT NOT NULL,
    policy TEXT,
    started_at REAL NOT NULL,
    scheduled INTEGER NOT NULL DEFAULT 0,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    acknowledged_how TEXT,
    silenced_at REAL,
    resolved_at REAL
);
-- One open incident per group: two processes opening the group's first one at once cannot make two.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open ON incidents (receiver, group_id) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS incidents_by_group ON incidents (receiver, group_id, started_at);
CREATE INDEX IF NOT EXISTS incidents_by_start ON incidents (started_at);
CREATE INDEX IF NOT EXISTS incidents_by_resolved ON incidents (resolved_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the timeline's order: as appended
    incident_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    who TEXT NOT NULL,                      -- a JSON list
    how TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_incident ON events (incident_id, seq);
CREATE TABLE IF NOT EXISTS steps (
    incident_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    step INTEGER NOT NULL,
    taker TEXT NOT NULL DEFAULT '',  -- the job that took it: it may ask again after a restart
    PRIMARY KEY (incident_id, round, step)
);
"""
_OPEN = "SELECT * FROM incidents WHERE receiver = ? AND group_id = ? AND resolved_at IS NULL"


def oncall_path(outbox_path: str | Path) -> Path:
    return beside(outbox_path, "oncall")


def _override(row: sqlite3.Row) -> Override:
    return Override(
        id=row["id"],
        schedule=row["schedule"],
        user=row["user"],
        start=row["start"],
        end=row["end"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def _events(db: sqlite3.Connection, incident_id: str) -> list[IncidentEvent]:
    rows = db.execute("SELECT * FROM events WHERE incident_id = ? ORDER BY seq", (incident_id,))
    return [
        IncidentEvent(at=r["at"], kind=r["kind"], who=json.loads(r["who"]), how=r["how"], detail=r["detail"])
        for r in rows.fetchall()
    ]


def _incident(db: sqlite3.Connection, row: sqlite3.Row | None) -> Incident | None:
    if row is None:
        return None
    return Incident(
        id=row["id"],
        receiver=row["receiver"],
        group_key=row["group_key"],
        group_id=row["group_id"],
        title=row["title"],
        policy=row["policy"],
        started_at=row["started_at"],
        scheduled=bool(row["scheduled"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_how=row["acknowledged_how"],
        silenced_at=row["silenced_at"],
        resolved_at=row["resolved_at"],
        events=_events(db, row["id"]),
    )


def _by_id(db: sqlite3.Connection, incident_id: str) -> Incident | None:
    return _incident(db, db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone())


def _append(db: sqlite3.Connection, incident_id: str, event: IncidentEvent) -> None:
    """Within a write transaction: the event, then the oldest after "opened" past MOST_EVENTS go."""
    db.execute(
        "INSERT INTO events (incident_id, at, kind, who, how, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (
            incident_id,
            event.at,
            event.kind,
            json.dumps(event.who, ensure_ascii=False),
            event.how,
            event.detail,
        ),
    )
    (count,) = db.execute("SELECT count(*) FROM events WHERE incident_id = ?", (incident_id,)).fetchone()
    if count > MOST_EVENTS:
        db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE incident_id = ? AND kind != 'opened'"
            " ORDER BY seq LIMIT ?)",
            (incident_id, count - MOST_EVENTS),
        )


class SQLiteOncallStore(OncallStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # 0600 in a directory made 0700: who is on call, who acknowledged.
        self._db = SmallDatabase(self.path, _SCHEMA)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        return await self._db.transaction(fn, write)

    async def close(self) -> None:
        await self._db.close()

    # -- overrides ------------------------------------------------------------------------------------

    async def add_override(self, override: Override) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    override.id,
                    override.schedule,
                    override.user,
                    override.start,
                    override.end,
                    override.created_by,
                    override.created_at,
                ),
            )

        await self._run(add)

    async def remove_override(self, override_id: str) -> bool:
        def remove(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM overrides WHERE id = ?", (override_id,)).rowcount == 1

        return await self._run(remove)

    async def overrides(self, schedule: str | None, start: float, end: float) -> list[Override]:
        def get(db: sqlite3.Connection) -> list[Override]:
            rows = db.execute(
                'SELECT * FROM overrides WHERE start < ? AND "end" > ? AND (? IS NULL OR schedule = ?)'
                " ORDER BY start, id",
                (end, start, schedule, schedule),
            ).fetchall()
            return [_override(r) for r in rows]

        return await self._run(get)

    # -- incidents ------------------------------------------------------------------------------------

    async def open_incident(
        self, receiver: str, group_key: str, title: str, policy: str | None, at: float
    ) -> tuple[Incident, bool]:
        gid = group_id(group_key)

        def open_(db: sqlite3.Connection) -> tuple[Incident, bool]:
            found = _incident(db, db.execute(_OPEN, (receiver, gid)).fetchone())
            if found is not None:
                return found, False
            incident_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO incidents (id, receiver, group_key, group_id, title, policy, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident_id, receiver, group_key, gid, title, policy, at),
            )
            _append(db, incident_id, IncidentEvent(at=at, kind="opened"))
            made = _by_id(db, incident_id)
            assert made is not None
            return made, True

        return await self._transaction(open_)

    async def mark_scheduled(self, incident_id: str) -> None:
        await self._run(
            lambda db: db.execute("UPDATE incidents SET scheduled = 1 WHERE id = ?", (incident_id,))
        )

    async def incident(self, incident_id: str) -> Incident | None:
        return await self._run(lambda db: _by_id(db, incident_id))

    async def current(self, receiver: str, group_id: str) -> Incident | None:
        def get(db: sqlite3.Connection) -> Incident | None:
            # The open one (resolved_at NULL sorts first), else the latest.
            row = db.execute(
                "SELECT * FROM incidents WHERE receiver = ? AND group_id = ?"
                " ORDER BY resolved_at IS NULL DESC, started_at DESC, id DESC LIMIT 1",
                (receiver, group_id),
            ).fetchone()
            return _incident(db, row)

        return await self._run(get)

    async def incidents(self, limit: int = 100, open_only: bool = False, offset: int = 0) -> list[Incident]:
        def get(db: sqlite3.Connection) -> list[Incident]:
            rows = db.execute(
                "SELECT * FROM incidents WHERE (? = 0 OR resolved_at IS NULL)"
                " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
                (int(open_only), limit, offset),
            ).fetchall()
            return [i for r in rows if (i := _incident(db, r)) is not None]

        # One transaction: each incident's events as of the same moment as the incident.
        return await self._transaction(get, write=False)

    async def add_event(self, incident_id: str, event: IncidentEvent) -> None:
        def add(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone() is not None:
                _append(db, incident_id, event)

        await self._transaction(add)

    async def acknowledge(self, incident_id: str, user: str, how: str, at: float) -> bool:
        def ack(db: sqlite3.Connection) -> bool:
            taken = db.execute(
                "UPDATE incidents SET acknowledged_by = ?, acknowledged_at = ?, acknowledged_how = ?"
                " WHERE id = ? AND acknowledged_at IS NULL AND resolved_at IS NULL",
                (user, at, how, incident_id),
            ).rowcount
            if taken:
                _append(db, incident_id, IncidentEvent(at=at, kind="acknowledged", who=[user], how=how))
            return bool(taken)

        return await self._transaction(ack)

    async def silenced(self, incident_id: str, user: str, at: float, detail: str) -> None:
        def silence(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone() is None:
                return
            # The first silence of an open incident is when escalation stopped; every one is in the timeline.
            db.execute(
                "UPDATE incidents SET silenced_at = ? WHERE id = ? AND silenced_at IS NULL AND resolved_at IS NULL",
                (at, incident_id),
            )
            _append(db, incident_id, IncidentEvent(at=at, kind="silenced", who=[user], detail=detail))

        await self._transaction(silence)

    async def resolve(self, receiver: str, group_id: str, at: float) -> Incident | None:
        def end(db: sqlite3.Connection) -> Incident | None:
            row = db.execute(_OPEN, (receiver, group_id)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE incidents SET resolved_at = ? WHERE id = ?", (at, row["id"]))
            _append(db, row["id"], IncidentEvent(at=at, kind="resolved"))
            return _by_id(db, row["id"])

        return await self._transaction(end)

    async def take_step(self, incident_id: str, round_: int, step: int, taker: str) -> bool:
        def take(db: sqlite3.Connection) -> bool:
            # One statement: of two connections, one inserts the row. A purged incident's steps are
            # never taken (there is nothing left to escalate).
            cursor = db.execute(
                "INSERT OR IGNORE INTO steps (incident_id, round, step, taker)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM incidents WHERE id = ?)",
                (incident_id, round_, step, taker, incident_id),
            )
            if cursor.rowcount == 1:
                return True
            row = db.execute(
                "SELECT taker FROM steps WHERE incident_id = ? AND round = ? AND step = ?",
                (incident_id, round_, step),
            ).fetchone()
            return row is not None and row[0] == taker

        return await self._transaction(take)

    # -- retention ------------------------------------------------------------------------------------

    async def purge(self, now: float, keep: float) -> int:
        before = now - keep

        def purge(db: sqlite3.Connection) -> int:
            db.execute(
                "DELETE FROM events WHERE incident_id IN (SELECT id FROM incidents WHERE resolved_at < ?)",
                (before,),
            )
            db.execute(
                "DELETE FROM steps WHERE incident_id IN (SELECT id FROM incidents WHERE resolved_at < ?)",
                (before,),
            )
            gone = db.execute("DELETE FROM incidents WHERE resolved_at < ?", (before,)).rowcount
            db.execute('DELETE FROM overrides WHERE "end" < ?', (before,))
            return int(gone)

        return await self._transaction(purge)
