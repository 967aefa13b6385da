"""What only the SQLite backend does: the ingest child process, group commits that fail one write alone,
storage.max_size_mb, the schema's migrations and `storage_problem`. The rules every backend keeps are in
test_outbox_contract.py."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from alertmanager_wecom.outbox import AcceptResult, JobState, NewJob, OutboxUnavailable, SQLiteOutbox
from alertmanager_wecom.outbox.sqlite import storage_problem

pytestmark = pytest.mark.anyio
JOBS = [NewJob("t1", '{"app": "ops", "to_user": ["a"]}'), NewJob("t2", '{"app": "ops", "to_user": ["b"]}')]


def with_payload(payload: str, base: list[NewJob]) -> list[NewJob]:
    return [dataclasses.replace(job, payload=payload) for job in base]


async def test_a_failing_webhook_does_not_undo_the_others_in_its_group_commit(tmp_path: Path) -> None:
    # Webhooks accepted in one turn of the event loop go to the ingest child in one frame, and the child
    # commits a frame in one transaction (schema.run_isolated). One of them does not fit in the outbox
    # (storage.max_size_mb): it alone is refused (503, Alertmanager retries); the others are committed.
    store = SQLiteOutbox(tmp_path / "o.db", max_size_mb=1)
    await store.accept("r", with_payload('{"first": 1}', JOBS[:1]), "k0", 300, 100.0)  # the child runs
    too_big = "x" * 2_000_000
    results = await asyncio.gather(
        *(
            store.accept("r", with_payload(payload, JOBS[:1]), f"k{i}", 300, 101.0)
            for i, payload in enumerate(['{"ok": 1}', '{"ok": 2}', too_big, '{"ok": 3}'], start=1)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[2], OutboxUnavailable) and "full" in str(results[2])
    assert [r.duplicate for r in results if isinstance(r, AcceptResult)] == [False, False, False]
    assert [j.payload for j in await store.pending_jobs("t1", 200.0, 10)] == [
        '{"first": 1}',
        '{"ok": 1}',
        '{"ok": 2}',
        '{"ok": 3}',
    ]
    # Nothing of the refused one stayed (notification, job or dedup key): Alertmanager's retry, made to
    # fit, is accepted, not taken for a duplicate.
    assert (await store.stats(200.0)).pending == 4
    assert not (await store.accept("r", with_payload('{"ok": 4}', JOBS[:1]), "k3", 300, 102.0)).duplicate
    await store.close()


async def test_a_failing_write_does_not_undo_the_others_in_the_writer_threads_batch(tmp_path: Path) -> None:
    # The dispatcher's writes share the writer thread's transactions the same way (schema.run_isolated):
    # a digest too big for the outbox is refused alone; the writes batched with it are committed.
    store = SQLiteOutbox(tmp_path / "o.db", max_size_mb=1)
    for i in range(4):
        await store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0 + i)
    a, b, c, d = await store.pending_jobs("t1", 200.0, 10)
    # While another connection holds the write lock, the writer thread waits in its first transaction
    # (busy timeout: 10 s) and the writes queued meanwhile form its next one: every way of cutting the
    # four writes below into those two puts the refused merge with at least one other.
    blocker = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    writes = [
        asyncio.ensure_future(store.done(a.id, 201.0)),
        asyncio.ensure_future(store.progress(b.id, 2, 201.0)),
        asyncio.ensure_future(store.merge([d], "x" * 2_000_000, 1, 201.0)),
        asyncio.ensure_future(store.done(c.id, 201.0)),
    ]
    await asyncio.sleep(0)  # one turn of the loop: each write is queued for the writer thread
    assert not any(write.done() for write in writes)
    blocker.execute("ROLLBACK")
    blocker.close()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results[2], OutboxUnavailable) and "full" in str(results[2])
    assert [r for i, r in enumerate(results) if i != 2] == [None, None, None]
    assert [(j.id, j.sent_parts) for j in await store.pending_jobs("t1", 200.0, 10)] == [(b.id, 2), (d.id, 0)]
    assert await store.list_jobs(JobState.MERGED, 10) == []
    assert sorted(j.id for j in await store.list_jobs(JobState.DONE, 10)) == [a.id, c.id]
    await store.close()


async def test_full_outbox_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db", max_size_mb=1)
    with pytest.raises(OutboxUnavailable):
        for i in range(10):
            await store.accept("r", with_payload("x" * 300_000, JOBS), f"k{i}", 300, 100.0)
    await store.close()
    with pytest.raises(OutboxUnavailable):
        await store.accept("r", with_payload("{}", JOBS), None, 0, 100.0)


def _ingest_pid(store: SQLiteOutbox) -> int:
    pid = store.ingest_pid
    assert pid is not None
    return pid


def _sleeps_in_sqlite_busy_handler(pid: int) -> bool:
    """The process sleeps in a timed wait (SQLite's busy handler retries after a nanosleep), not in a
    read of its stdin, where an idle ingest child waits."""
    return "nanosleep" in Path(f"/proc/{pid}/wchan").read_text()


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):  # 5 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_webhook_commits_go_through_a_child_that_is_restarted_if_it_dies(tmp_path: Path) -> None:
    exits: list[int] = []
    store = SQLiteOutbox(tmp_path / "o.db", on_ingest_exit=lambda: exits.append(1))
    first = await store.accept("r", with_payload('{"n": 1}', JOBS), "k1", 300, 100.0)
    pid = _ingest_pid(store)
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    # What was in flight fails (503: Alertmanager retries); the next webhook starts a new child.
    for _ in range(50):
        try:
            second = await store.accept("r", with_payload('{"n": 2}', JOBS), "k2", 300, 101.0)
            break
        except OutboxUnavailable:
            await asyncio.sleep(0.05)
    assert _ingest_pid(store) != pid
    assert exits == [1]  # counted (alertmanager_wecom_ingest_writer_exits_total)
    assert second.notification_id is not None and second.notification_id > (first.notification_id or 0)
    # The dedup keys the dead child committed still hold.
    assert (await store.accept("r", with_payload('{"n": 1}', JOBS), "k1", 300, 102.0)).duplicate
    assert [j.payload for j in await store.pending_jobs("t1", 200.0, 10)] == ['{"n": 1}', '{"n": 2}']
    await store.close()
    assert exits == [1]  # closing is not an exit to count


async def test_the_child_exits_with_the_outbox(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    await store.accept("r", with_payload("{}", JOBS), None, 0, 100.0)
    pid = _ingest_pid(store)
    await store.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_webhook_in_flight_when_the_child_dies_is_answered_503(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    await store.accept("r", with_payload("{}", JOBS), None, 0, 100.0)
    # Hold the write lock, so that the child's next commit waits; then kill the child mid-commit.
    blocker = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    in_flight = asyncio.ensure_future(store.accept("r", with_payload('{"late": 1}', JOBS), "k", 300, 101.0))
    # The child has taken it and waits for the lock (busy timeout: 10 s), instead of for its stdin.
    await _until(lambda: _sleeps_in_sqlite_busy_handler(_ingest_pid(store)), "the child waiting for the lock")
    assert not in_flight.done()
    os.kill(_ingest_pid(store), signal.SIGKILL)
    with pytest.raises(OutboxUnavailable, match="ingest writer exited"):
        await asyncio.wait_for(in_flight, 5)
    blocker.execute("ROLLBACK")
    blocker.close()
    # Nothing of it was stored: Alertmanager's retry is accepted, not taken for a duplicate.
    assert not (await store.accept("r", with_payload('{"late": 1}', JOBS), "k", 300, 102.0)).duplicate
    await store.close()


async def test_an_outbox_written_before_the_inflight_column_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    old = sqlite3.connect(db)
    old.executescript(
        """
        CREATE TABLE notifications (id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, received_at REAL NOT NULL,
            payload TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'webhook');
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, notification_id INTEGER NOT NULL REFERENCES notifications(id),
            receiver TEXT NOT NULL, target_key TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, sent_parts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            next_attempt_at REAL NOT NULL, updated_at REAL NOT NULL, digest_of INTEGER NOT NULL DEFAULT 0,
            last_error TEXT, reason TEXT, merged_into INTEGER);
        INSERT INTO notifications VALUES (1, 'r', 100.0, '{"old": 1}', 'webhook');
        INSERT INTO jobs(id, notification_id, receiver, target_key, target, state, created_at, next_attempt_at,
            updated_at) VALUES (1, 1, 'r', 't1', '{}', 'pending', 100.0, 100.0, 100.0);
        """
    )
    old.close()
    store = SQLiteOutbox(db)
    [job] = await store.pending_jobs("t1", 200.0, 10)
    assert (job.payload, job.inflight) == ('{"old": 1}', False)
    await store.sending(job.id, 200.0)
    assert [j.inflight for j in await store.pending_jobs("t1", 200.0, 10)] == [True]
    await store.close()


async def test_an_outbox_written_before_tracing_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    store = SQLiteOutbox(db)
    await store.accept("r", [NewJob("t1", "{}", '{"old": 1}')], None, 0, 100.0)
    await store.close()
    old = sqlite3.connect(db)  # as the release before tracing left it: no traceparent column
    old.execute("ALTER TABLE jobs DROP COLUMN traceparent")
    old.commit()
    old.close()
    store = SQLiteOutbox(db)
    [job] = await store.pending_jobs("t1", 200.0, 10)
    assert (job.payload, job.traceparent) == ('{"old": 1}', None)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await store.accept("r", [NewJob("t1", "{}", '{"new": 1}', traceparent=traceparent)], None, 0, 101.0)
    assert [j.traceparent for j in await store.pending_jobs("t1", 200.0, 10)] == [None, traceparent]
    await store.close()


async def test_an_outbox_in_memory_needs_no_file_nor_child(tmp_path: Path) -> None:
    store = SQLiteOutbox(":memory:")
    await store.accept("r", with_payload("{}", JOBS), "k", 300, 100.0)
    assert (await store.accept("r", with_payload("{}", JOBS), "k", 300, 101.0)).duplicate
    assert store.ingest_pid is None
    assert await store.check_writable(101.0) is None
    assert len(await store.pending_jobs("t1", 200.0, 10)) == 1
    await store.close()


def test_the_ingest_child_is_started_by_its_module_path(tmp_path: Path) -> None:
    # The relay starts it as `python -m <module>`: the module must run as a script and exit on EOF.
    from alertmanager_wecom.outbox.sqlite import ingest_child

    done = subprocess.run(
        [sys.executable, "-m", ingest_child.__name__, str(tmp_path / "o.db"), "normal", "0"],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert (tmp_path / "o.db").exists()


def test_storage_problem_names_storage_path_and_the_fix(tmp_path: Path) -> None:
    assert storage_problem(":memory:") is None
    assert storage_problem(tmp_path, create=False) == (
        f"storage.path {tmp_path} is a directory: set storage.path to a file in it, e.g. {tmp_path / 'outbox.db'}"
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    problem = storage_problem(junk)
    assert problem is not None and problem.startswith(f"storage.path {junk} cannot be opened as the outbox")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert storage_problem(blocker / "sub" / "o.db", create=False) == (
        f"storage.path {blocker / 'sub' / 'o.db'}: {blocker} is a file, not a directory: fix storage.path"
    )


def test_storage_problem_creates_the_outbox_only_when_asked(tmp_path: Path) -> None:
    db = tmp_path / "data" / "o.db"
    assert storage_problem(db, create=False) is None
    assert not db.parent.exists()
    assert storage_problem(db) is None
    assert db.exists()
    assert storage_problem(db, create=False) is None
