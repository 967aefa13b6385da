"""The outbox's tables (and their migrations), its connections, and `run_isolated`, the group commit
both of its writers use.

Shared by the relay's threads and the ingest child process (`ingest_child`), which imports only this
module, `accept` and the records, so that it starts quickly.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alertmanager_wecom.outbox.base import Job, JobState
from alertmanager_wecom.outbox.sqlite.files import private_database
from alertmanager_wecom.outbox.sqlite.pages import is_corruption

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
    inflight INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT
);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sends (rate_key TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""
# Created after the migrations: an index may name a column an older outbox gets only from them.
# The states in SQL are JobState values; `jobs_started` is partial on a literal, so the queries that
# use it name the same literal.
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(target_key, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(target_key, state, id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at);
CREATE INDEX IF NOT EXISTS jobs_started ON jobs(target_key) WHERE state = 'pending' AND (sent_parts > 0 OR inflight = 1);
CREATE INDEX IF NOT EXISTS sends_at ON sends(at);
"""


# A Job is read as these columns, in the order of its fields.
JOB_COLUMNS = (
    "j.id, j.notification_id, j.receiver, j.target_key, j.target, j.state, j.attempts, j.sent_parts, "
    "j.created_at, j.next_attempt_at, j.updated_at, n.payload, j.digest_of, j.last_error, j.reason, j.merged_into, j.inflight, j.traceparent"
)
NEXT_ATTEMPT_AT = 9  # its index in JOB_COLUMNS
JOB_FROM = "FROM jobs j JOIN notifications n ON n.id = j.notification_id"
# Partly sent jobs, through a small partial index: left to itself SQLite would walk the whole backlog.
STARTED_FROM = "FROM jobs j INDEXED BY jobs_started JOIN notifications n ON n.id = j.notification_id"


def job_from_row(row: tuple[Any, ...]) -> Job:
    values = list(row)
    values[5] = JobState(values[5])
    values[16] = bool(values[16])
    return Job(*values)


def connect(path: str | Path) -> sqlite3.Connection:
    private_database(path)
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
    """Create what is missing and migrate an older outbox (idempotent: run at every open)."""
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "inflight" not in columns:  # an outbox written by 0.1.0 before the column existed
        conn.execute("ALTER TABLE jobs ADD COLUMN inflight INTEGER NOT NULL DEFAULT 0")
    if "traceparent" not in columns:
        # Jobs stored before tracing have none (NULL). An older version still opens the file: it names
        # the columns it reads.
        conn.execute("ALTER TABLE jobs ADD COLUMN traceparent TEXT")
    conn.executescript(INDEXES)


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
        if is_corruption(str(exc)):
            # The page cache keeps the corrupt page it read: drop it, so that the next transaction reads
            # the file again (restored in place, or fine after a failed read) instead of failing forever.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA shrink_memory")
        if len(operations) == 1:
            return [exc]
        return [run_isolated(conn, begin, [operation])[0] for operation in operations]
    return results
