"""The outbox's tables, its writer connection, and the one insert both of its writers run.

Shared by the relay's writer thread and the ingest child process (`ingest_process`), which imports only
this module and the records, so that it starts quickly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from alertmanager_wecom.outbox.base import AcceptResult, NewJob

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'webhook'
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    receiver TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_parts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    digest_of INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    reason TEXT,
    merged_into INTEGER,
    inflight INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(target_key, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(target_key, state, id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at);
CREATE INDEX IF NOT EXISTS jobs_started ON jobs(target_key) WHERE state = 'pending' AND (sent_parts > 0 OR inflight = 1);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sends (rate_key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sends_at ON sends(at);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)


def connect_writer(path: str | Path, synchronous: str, max_size_mb: int | None) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    if max_size_mb is not None:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={max(16, max_size_mb * 1024 * 1024 // page_size)}")
    # Checkpoints copy the WAL into the database file. Done by a writer at commit time, they stall
    # every commit behind them (latency spikes under load); a third connection does them instead,
    # in PASSIVE mode, which never blocks the writers.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "inflight" not in columns:  # an outbox written by 0.1.0 before the column existed
        conn.execute("ALTER TABLE jobs ADD COLUMN inflight INTEGER NOT NULL DEFAULT 0")


JobRow = tuple[str, str, str | bytes, str | None]  # target_key, target, payload, dead_reason


def run_isolated(
    conn: sqlite3.Connection, begin: str, operations: Sequence[Callable[[sqlite3.Connection], object]]
) -> list[object]:
    """Run the operations in one transaction (one commit, one fsync); if one fails, run each in its own
    instead, so that one failure undoes no other (the common path pays for no savepoints). A failed
    operation's result is its exception."""
    try:
        conn.execute(begin)
        results = [operation(conn) for operation in operations]
        conn.execute("COMMIT")
    except Exception as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if len(operations) == 1:
            return [exc]
        return [run_isolated(conn, begin, [operation])[0] for operation in operations]
    return results


def job_rows(jobs: list[NewJob]) -> list[JobRow]:
    return [(job.target_key, job.target, job.payload, job.dead_reason) for job in jobs]


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
    for target_key, target, payload, dead_reason in jobs:
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
                " next_attempt_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                (notification_id, receiver, target_key, target, now, now, now),
            )
        else:
            conn.execute(
                "INSERT INTO jobs(notification_id, receiver, target_key, target, state, created_at,"
                " next_attempt_at, updated_at, last_error, reason) VALUES (?, ?, ?, ?, 'dead', ?, ?, ?, ?,"
                " 'recipients')",
                (notification_id, receiver, target_key, target, now, now, now, dead_reason),
            )
    return AcceptResult(first, duplicate=False)


def probe(conn: sqlite3.Connection, path: str, now: float, inode: int | None = None) -> int:
    """Readiness: the write a webhook makes, in small (inside the caller's transaction, on the webhooks'
    connection), after looking at the file afresh, which a connection that has it cached would not do:
    still the file `conn` opened (`inode`), still an SQLite database, still openable read-write.
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
