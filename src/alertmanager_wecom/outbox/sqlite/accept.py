"""What `Outbox.accept` writes, and the readiness probe's write in small: run by both writers (the ingest
child, and the relay's writer thread for an outbox in memory), inside the caller's transaction."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

from alertmanager_wecom.outbox.base import AcceptResult, NewJob
from alertmanager_wecom.outbox.sqlite.pages import page_problem
from alertmanager_wecom.reasons import Reason

# target_key, target, payload, dead_reason, traceparent, due_at
JobRow = tuple[str, str, str | bytes, str | None, str | None, float | None]


def job_rows(jobs: list[NewJob]) -> list[JobRow]:
    return [
        (job.target_key, job.target_spec, job.payload, job.dead_reason, job.traceparent, job.due_at)
        for job in jobs
    ]


def insert_notification(
    conn: sqlite3.Connection,
    receiver: str,
    jobs: list[JobRow],
    dedup_key: str | None,
    dedup_window: float,
    now: float,
) -> AcceptResult:
    """Store a webhook's jobs (inside the caller's transaction), unless a replica sent it already."""
    if dedup_key is not None:
        # One statement: insert the key, or refresh it if its window has passed; no change
        # means a replica already sent this notification within the window.
        cursor = conn.execute(
            "INSERT INTO dedup(key, seen_at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
            " SET seen_at = excluded.seen_at WHERE excluded.seen_at - dedup.seen_at >= ?",
            (dedup_key, now, dedup_window),
        )
        if cursor.rowcount == 0:
            return AcceptResult(None, duplicate=True)
    first: int | None = None
    stored: dict[int, int] = {}  # id(payload) → notification row: targets sharing it share the row
    for target_key, target, payload, dead_reason, traceparent, due_at in jobs:
        notification_id = stored.get(id(payload))
        if notification_id is None:
            text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
            cursor = conn.execute(
                "INSERT INTO notifications(receiver, received_at, payload) VALUES (?, ?, ?)",
                (receiver, now, text),
            )
            notification_id = stored[id(payload)] = int(cursor.lastrowid or 0)
        first = first or notification_id
        if dead_reason is None:
            conn.execute(
                "INSERT INTO jobs(notification_id, receiver, target_key, target, state, created_at,"
                " next_attempt_at, updated_at, traceparent) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (
                    notification_id,
                    receiver,
                    target_key,
                    target,
                    now,
                    now if due_at is None else due_at,
                    now,
                    traceparent,
                ),
            )
        else:
            # Routed, but no valid recipient was left: a dead letter from the start (see NewJob).
            conn.execute(
                "INSERT INTO jobs(notification_id, receiver, target_key, target, state, created_at,"
                " next_attempt_at, updated_at, last_error, reason, traceparent)"
                " VALUES (?, ?, ?, ?, 'dead', ?, ?, ?, ?, ?, ?)",
                (
                    notification_id,
                    receiver,
                    target_key,
                    target,
                    now,
                    now,
                    now,
                    dead_reason,
                    Reason.RECIPIENTS,
                    traceparent,
                ),
            )
    return AcceptResult(first, duplicate=False)


def probe(
    conn: sqlite3.Connection, path: str, now: float, inode: int | None = None, check_pages: bool = False
) -> int:
    """Readiness: the write a webhook makes, in small (inside the caller's transaction, on the webhooks'
    connection), after looking at the file afresh, which a connection that has it cached would not do:
    still the file `conn` opened (`inode`), still an SQLite database, still openable read-write.
    With `check_pages`, also `PRAGMA quick_check` on that fresh connection (see `pages`).
    Returns the bytes the outbox can still grow by (storage.max_size_mb and the disk)."""
    room = None
    if path != ":memory:":
        if inode is not None and os.stat(path).st_ino != inode:
            raise sqlite3.OperationalError(
                f"{path} was replaced or removed while open: restart the service to open it again"
            )
        with open(path, "rb") as file:
            if file.read(len(_HEADER)) != _HEADER:
                raise sqlite3.DatabaseError(f"{path} is not a database (its header was overwritten)")
        fresh = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=0)
        try:
            fresh.execute("SELECT count(*) FROM sqlite_master").fetchone()
            problem = page_problem(fresh, path) if check_pages else None
            if problem is not None:
                raise sqlite3.DatabaseError(problem)
        finally:
            fresh.close()
        room = shutil.disk_usage(Path(path).parent).free
    conn.execute("INSERT OR REPLACE INTO probe(id, at) VALUES (1, ?)", (now,))
    page_size, pages, free, max_pages = (
        conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("page_size", "page_count", "freelist_count", "max_page_count")
    )
    inside = int((max_pages - pages + free) * page_size)
    return inside if room is None else min(inside, room + free * page_size)


_HEADER = b"SQLite format 3\x00"
