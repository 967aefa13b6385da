"""The SQLite outbox (WAL mode): webhook commits in a child process, the dispatcher's and operators'
writes on a writer thread with group commit, reads on a reader thread, checkpoints on a third.

The rules it keeps are written on `Outbox` (outbox/base.py); the comments here say how."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alertmanager_wecom.outbox.base import (
    AcceptResult,
    Job,
    JobState,
    NewJob,
    OutboxStats,
    OutboxUnavailable,
    SendClaim,
    WriteAhead,
)
from alertmanager_wecom.outbox.sqlite.accept import insert_notification, job_rows, probe
from alertmanager_wecom.outbox.sqlite.ingest_process import IngestProcess
from alertmanager_wecom.outbox.sqlite.one_process import OneProcess
from alertmanager_wecom.outbox.sqlite.pages import page_problem
from alertmanager_wecom.outbox.sqlite.readiness import Readiness
from alertmanager_wecom.outbox.sqlite.schema import (
    JOB_COLUMNS,
    JOB_FROM,
    NEXT_ATTEMPT_AT,
    STARTED_FROM,
    connect,
    connect_writer,
    create_schema,
    job_from_row,
)
from alertmanager_wecom.outbox.sqlite.writer import Worker
from alertmanager_wecom.reasons import Reason

_WRITTEN = WriteAhead()
T = TypeVar("T")
CHECKPOINT_SECONDS = 0.5
_ROW_OVERHEAD = 4096  # a notification's rows and index entries besides its payload, generously


class SQLiteOutbox(OneProcess):
    """Webhooks are committed by the ingest child (`ingest_process`); the dispatcher's and operators'
    writes go through one writer thread; reads through another connection on its own thread.

    In WAL mode readers and writers do not block each other, so the dispatcher reading a large backlog
    (payloads, counts) never delays the commits that webhook answers wait for; SQLite serialises the
    two writers. Every write is committed before its caller continues, so a read issued afterwards
    sees it.
    """

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "full",
        max_size_mb: int | None = None,
        on_ingest_exit: Callable[[], object] | None = None,
    ) -> None:
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        conn = connect_writer(path, synchronous, max_size_mb)
        create_schema(conn)
        self._closed = False
        # Corrupt pages are looked for at start (on a connection that has read nothing yet), not only
        # when a webhook meets them.
        self._readiness = Readiness(self._run_probe, None if in_memory else page_problem(conn, str(path)))
        # Webhook commits go through a child process (see ingest_process); in memory there is no file
        # for it to share.
        self._ingest = (
            None if in_memory else IngestProcess(self.path, synchronous, max_size_mb, on_ingest_exit)
        )
        self._writer = Worker(conn, "outbox-writer", "BEGIN IMMEDIATE")
        if in_memory:  # a second connection would open another, empty database
            self._reader = self._writer
        else:
            reader = connect(path)
            reader.execute("PRAGMA query_only=ON")
            self._reader = Worker(reader, "outbox-reader", "BEGIN")
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="outbox-checkpoint", daemon=True)
        if not in_memory:
            self._checkpointer.start()

    @property
    def ingest_pid(self) -> int | None:
        """The ingest child's process id (None in memory, or before the first webhook or readiness probe)."""
        return self._ingest.pid if self._ingest is not None else None

    def _checkpoints(self) -> None:
        conn = connect(self.path)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    async def _call(self, fn: Callable[[sqlite3.Connection], T], read: bool = False) -> T:
        if self._closed:
            raise OutboxUnavailable("outbox is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._reader if read else self._writer).submit(fn, future)
        try:
            return await future
        except OutboxUnavailable as exc:  # the dispatcher's writes and reads meet corrupt pages too
            self._readiness.refused(str(exc))
            raise

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(fn, read=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ingest is not None:
            await self._ingest.close()
        self._stop_checkpoints.set()
        workers = [self._writer] if self._reader is self._writer else [self._reader, self._writer]
        for worker in workers:
            worker.stop()
            await asyncio.to_thread(worker.join, 30)
        if self._checkpointer.is_alive():
            await asyncio.to_thread(self._checkpointer.join, 30)
        with contextlib.suppress(sqlite3.Error):
            self._writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for worker in workers:
            worker.conn.close()

    # -- ingest ---------------------------------------------------------------------------------------

    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult:
        try:
            if self._ingest is not None:
                return await self._ingest.accept(receiver, jobs, dedup_key, dedup_window, now)

            def op(conn: sqlite3.Connection) -> AcceptResult:
                return insert_notification(conn, receiver, job_rows(jobs), dedup_key, dedup_window, now)

            return await self._call(op)
        except OutboxUnavailable as exc:
            payloads = {id(job.payload): len(job.payload) for job in jobs}
            self._readiness.refused(str(exc), sum(payloads.values()) + _ROW_OVERHEAD)
            raise

    async def check_writable(self, now: float) -> str | None:
        """Why a webhook could not be committed now, or None (see `Readiness.check`)."""
        if self._closed:
            return "outbox is closed"
        return await self._readiness.check(now)

    async def _run_probe(self, now: float, check_pages: bool) -> int:
        if self._ingest is not None:
            return await self._ingest.probe(now, check_pages)
        return await self._call(lambda conn: probe(conn, str(self.path), now, check_pages=check_pages))

    # -- dispatch -------------------------------------------------------------------------------------

    async def pending_targets(self) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            return [
                r[0] for r in conn.execute("SELECT DISTINCT target_key FROM jobs WHERE state = 'pending'")
            ]

        return await self._read(op)

    async def next_due(self, target_keys: list[str]) -> dict[str, float | None]:
        def op(conn: sqlite3.Connection) -> dict[str, float | None]:
            # Two indexed look-ups per target (jobs_target, jobs_started): cheap however long the backlog.
            due: dict[str, float | None] = {}
            for key in target_keys:
                first = conn.execute(
                    "SELECT next_attempt_at FROM jobs WHERE target_key = ? AND state = 'pending' ORDER BY id LIMIT 1",
                    (key,),
                ).fetchone()
                started = conn.execute(
                    "SELECT MIN(next_attempt_at) FROM jobs INDEXED BY jobs_started"
                    " WHERE target_key = ? AND state = 'pending' AND (sent_parts > 0 OR inflight = 1)",
                    (key,),
                ).fetchone()[0]
                times = [t for t in (first[0] if first else None, started) if t is not None]
                due[key] = min(times) if times else None
            return due

        return await self._read(op)

    async def pending_jobs(self, target_key: str, now: float, limit: int, after_id: int = 0) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            started = (
                conn.execute(
                    f"SELECT {JOB_COLUMNS} {STARTED_FROM} WHERE j.target_key = ? AND j.state = 'pending'"
                    " AND (j.sent_parts > 0 OR j.inflight = 1) AND j.next_attempt_at <= ? ORDER BY j.id",
                    (target_key, now),
                ).fetchall()
                if after_id == 0
                else []
            )
            # Walking jobs_target in id order stops after `limit` rows; the page ends at the first job not
            # due yet, so that no job overtakes an earlier one held back by a failure (see
            # Outbox.retry_later), also one accepted after the failure, also after a restart.
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.target_key = ? AND j.state = 'pending'"
                " AND j.id > ? ORDER BY j.id LIMIT ?",
                (target_key, after_id, limit),
            ).fetchall()
            seen = {row[0] for row in started}
            due = list(itertools.takewhile(lambda r: r[NEXT_ATTEMPT_AT] <= now, rows))
            return [job_from_row(r) for r in started] + [job_from_row(r) for r in due if r[0] not in seen]

        return await self._read(op)

    async def sending(self, job_id: int, now: float, claim: SendClaim | None = None) -> WriteAhead:
        # One process: never given a claim (its own limiter paces it, and it holds every target).
        await self._call(
            lambda conn: conn.execute(
                "UPDATE jobs SET inflight = 1, updated_at = ? WHERE id = ?", (now, job_id)
            )
        )
        return _WRITTEN

    async def claim_send(self, now: float, claim: SendClaim) -> WriteAhead:
        # One process: never asked (its own limiter decided); the send is recorded, as it would be.
        await self.record_send([key for key, _windows in claim.limits], now)
        return _WRITTEN

    async def sent(self, counted: tuple[str, ...], now: float) -> None:
        return None  # one process: `claim_send` recorded the send; its limiter paces by its own clock

    async def progress(self, job_id: int, sent_parts: int, now: float) -> None:
        await self._call(
            lambda conn: conn.execute(
                "UPDATE jobs SET sent_parts = ?, inflight = 0, updated_at = ? WHERE id = ?",
                (sent_parts, now, job_id),
            )
        )

    async def done(self, job_id: int, now: float) -> None:
        await self._call(
            lambda conn: conn.execute(
                "UPDATE jobs SET state = 'done', updated_at = ?, last_error = NULL WHERE id = ?",
                (now, job_id),
            )
        )

    async def retry_later(
        self,
        job_id: int,
        attempts: int,
        next_attempt_at: float,
        error: str,
        reason: Reason,
        now: float,
        maybe_delivered: bool = False,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET attempts = ?, next_attempt_at = ?, last_error = ?, reason = ?, updated_at = ?,"
                " inflight = ? WHERE id = ?",
                (attempts, next_attempt_at, error, reason, now, int(maybe_delivered), job_id),
            )
            # The whole target waits (see Outbox.retry_later): later notifications must not overtake.
            conn.execute(
                "UPDATE jobs SET next_attempt_at = MAX(next_attempt_at, ?) WHERE state = 'pending' AND target_key ="
                " (SELECT target_key FROM jobs WHERE id = ?)",
                (next_attempt_at, job_id),
            )

        await self._call(op)

    async def dead(self, job_id: int, error: str, reason: Reason, now: float, refused: bool = False) -> None:
        # `refused` changes nothing here: one process records a send only once WeCom has taken it.
        await self._call(
            lambda conn: conn.execute(
                "UPDATE jobs SET state = 'dead', last_error = ?, reason = ?, updated_at = ? WHERE id = ?",
                (error, reason, now, job_id),
            )
        )

    async def merge(self, jobs: list[Job], payload: str, digest_of: int, now: float) -> Job:
        def op(conn: sqlite3.Connection) -> Job:
            first = jobs[0]
            cursor = conn.execute(
                "INSERT INTO notifications(receiver, received_at, payload, kind) VALUES (?, ?, ?, 'digest')",
                (first.receiver, now, payload),
            )
            created = min(j.created_at for j in jobs)
            cursor = conn.execute(
                "INSERT INTO jobs(notification_id, receiver, target_key, target, state, created_at, next_attempt_at,"
                " updated_at, digest_of, traceparent) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    cursor.lastrowid,
                    first.receiver,
                    first.target_key,
                    first.target_spec,
                    created,
                    now,
                    now,
                    digest_of,
                    next((j.traceparent for j in jobs if j.traceparent), None),
                ),
            )
            digest_id = cursor.lastrowid
            conn.executemany(
                "UPDATE jobs SET state = 'merged', merged_into = ?, updated_at = ? WHERE id = ?",
                [(digest_id, now, j.id) for j in jobs],
            )
            row = conn.execute(f"SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.id = ?", (digest_id,)).fetchone()
            return job_from_row(row)

        return await self._call(op)

    async def record_send(self, rate_keys: list[str], at: float) -> None:
        await self._call(
            lambda conn: conn.executemany(
                "INSERT INTO sends(rate_key, at) VALUES (?, ?)", [(k, at) for k in rate_keys]
            )
        )

    async def recent_sends(self, since: float) -> list[tuple[str, float]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            return [
                (r[0], float(r[1]))
                for r in conn.execute(
                    "SELECT rate_key, at FROM sends WHERE at >= ? ORDER BY at, rowid", (since,)
                )
            ]

        return await self._read(op)

    # -- operators ------------------------------------------------------------------------------------

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            where, args = ("WHERE j.state = ?", [state.value]) if state else ("", [])
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} {JOB_FROM} {where} ORDER BY j.id DESC LIMIT ?", (*args, limit)
            ).fetchall()
            return [job_from_row(r) for r in rows]

        return await self._read(op)

    async def get_job(self, job_id: int) -> Job | None:
        def op(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(f"SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.id = ?", (job_id,)).fetchone()
            return None if row is None else job_from_row(row)

        return await self._read(op)

    async def requeue(self, job_ids: list[int] | None, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if job_ids is None:
                cursor = conn.execute(
                    "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,"
                    " created_at = ? WHERE state = 'dead'",
                    (now, now, now),
                )
            else:
                cursor = conn.executemany(
                    "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,"
                    " created_at = ? WHERE id = ? AND state = 'dead'",
                    [(now, now, now, i) for i in job_ids],
                )
            return cursor.rowcount

        return await self._call(op)

    async def purge(self, states: list[JobState], older_than: float, job_ids: list[int] | None = None) -> int:
        def op(conn: sqlite3.Connection) -> int:
            marks = ",".join("?" for _ in states)
            only = f" AND id IN ({','.join('?' for _ in job_ids)})" if job_ids is not None else ""
            cursor = conn.execute(
                f"DELETE FROM jobs WHERE state IN ({marks}) AND updated_at < ?{only}",  # noqa: S608 - placeholders only
                (*[s.value for s in states], older_than, *(job_ids or [])),
            )
            conn.execute("DELETE FROM notifications WHERE id NOT IN (SELECT notification_id FROM jobs)")
            return cursor.rowcount

        return await self._call(op)

    async def forget(self, dedup_before: float, sends_before: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM dedup WHERE seen_at < ?", (dedup_before,))
            conn.execute("DELETE FROM sends WHERE at < ?", (sends_before,))

        await self._call(op)

    async def stats(self, now: float) -> OutboxStats:
        def op(conn: sqlite3.Connection) -> OutboxStats:
            pending, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state = 'pending'"
            ).fetchone()
            dead = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'dead'").fetchone()[0]
            return OutboxStats(int(pending), int(dead), max(0.0, now - oldest) if oldest is not None else 0.0)

        return await self._read(op)
