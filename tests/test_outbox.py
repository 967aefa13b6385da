from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from alertmanager_wecom.outbox import AcceptResult, JobState, NewJob, OutboxUnavailable, SQLiteOutbox

pytestmark = pytest.mark.anyio
JOBS = [NewJob("t1", '{"app": "ops", "to_user": ["a"]}'), NewJob("t2", '{"app": "ops", "to_user": ["b"]}')]


def with_payload(payload: str, base: list[NewJob]) -> list[NewJob]:
    return [dataclasses.replace(job, payload=payload) for job in base]


async def test_accept_is_durable_across_reopen(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    result = await store.accept("r", with_payload('{"x": 1}', JOBS), "k1", 300, now=100.0)
    assert result.notification_id is not None and not result.duplicate
    await store.close()
    reopened = SQLiteOutbox(tmp_path / "o.db")
    jobs = await reopened.pending_jobs("t1", now=100.0, limit=10)
    assert [(j.receiver, j.payload, j.state) for j in jobs] == [("r", '{"x": 1}', JobState.PENDING)]
    assert sorted(await reopened.pending_targets()) == ["t1", "t2"]
    assert await reopened.next_due(["t1", "t2", "t3"]) == {"t1": 100.0, "t2": 100.0, "t3": None}
    await reopened.close()


async def test_concurrent_accepts_share_commits_and_all_land(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    results = await asyncio.gather(
        *(store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), f"k{i}", 300, 100.0) for i in range(300))
    )
    assert len({r.notification_id for r in results}) == 300
    assert len(await store.pending_jobs("t1", 100.0, 1000)) == 300
    await store.close()


async def test_dedup_window(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    assert not (await store.accept("r", with_payload("{}", JOBS), "same", 300, 100.0)).duplicate
    assert (await store.accept("r", with_payload("{}", JOBS), "same", 300, 399.0)).duplicate
    assert not (
        await store.accept("r", with_payload("{}", JOBS), "same", 300, 401.0)
    ).duplicate  # a repeat, later
    assert len(await store.pending_jobs("t1", 500.0, 10)) == 2
    await store.close()


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


async def test_progress_retry_dead_requeue_purge_and_stats(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    for i in range(3):
        await store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0 + i)
    first, second, third = await store.pending_jobs("t1", 200.0, 10)
    await store.progress(first.id, 2, 150.0)
    await store.retry_later(first.id, 1, 300.0, "system busy", "busy", 150.0)
    # the whole target waits behind the failed job: order is kept
    assert await store.pending_jobs("t1", 299.0, 10) == []
    job = (await store.pending_jobs("t1", 300.0, 10))[0]
    assert (job.id, job.sent_parts, job.attempts, job.last_error) == (first.id, 2, 1, "system busy")
    await store.dead(second.id, "WeCom errcode 60020", "trusted_ip", 310.0)
    await store.done(third.id, 310.0)
    stats = await store.stats(now=400.0)
    assert (stats.pending, stats.dead, stats.oldest_pending_age) == (1, 1, 300.0)
    assert [j.id for j in await store.list_jobs(JobState.DEAD, 10)] == [second.id]
    assert await store.requeue([second.id], 500.0) == 1
    assert (await store.get_job(second.id)).state is JobState.PENDING  # type: ignore[union-attr]
    assert await store.purge([JobState.DONE], older_than=1000.0) == 1
    assert await store.get_job(third.id) is None
    await store.close()


async def test_merge_makes_one_digest_job(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    for i in range(3):
        await store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0 + i)
    jobs = await store.pending_jobs("t1", 200.0, 10)
    digest = await store.merge(jobs, '{"digest": true}', 3, 200.0)
    assert (digest.digest_of, digest.payload, digest.created_at, digest.target_key) == (
        3,
        '{"digest": true}',
        100.0,
        "t1",
    )
    assert [j.id for j in await store.pending_jobs("t1", 200.0, 10)] == [digest.id]
    assert {j.merged_into for j in await store.list_jobs(JobState.MERGED, 10)} == {digest.id}
    await store.close()


async def test_full_outbox_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db", max_size_mb=1)
    with pytest.raises(OutboxUnavailable):
        for i in range(10):
            await store.accept("r", with_payload("x" * 300_000, JOBS), f"k{i}", 300, 100.0)
    await store.close()
    with pytest.raises(OutboxUnavailable):
        await store.accept("r", with_payload("{}", JOBS), None, 0, 100.0)


async def test_sends_are_remembered(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    await store.record_send(["u:a", "u:b"], 100.0)
    await store.record_send(["u:a"], 50.0)
    assert await store.recent_sends(since=60.0) == [("u:a", 100.0), ("u:b", 100.0)]
    await store.prune_sends(older_than=75.0)
    assert await store.recent_sends(since=0.0) == [("u:a", 100.0), ("u:b", 100.0)]
    await store.close()


async def test_routed_jobs_keep_their_own_payloads_and_dead_reasons(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    routed = [
        NewJob("t1", "{}", payload='{"alerts": "all"}'),
        NewJob("t2", "{}", payload='{"alerts": "critical only"}'),
        NewJob("t3", "{}", payload='{"alerts": "owner=???"}', dead_reason="no valid recipient: '???'"),
    ]
    await store.accept("r", routed, None, 0, 100.0)
    assert [j.payload for j in await store.pending_jobs("t2", 100.0, 10)] == ['{"alerts": "critical only"}']
    [dead] = await store.list_jobs(JobState.DEAD, 10)
    assert (dead.target_key, dead.reason, dead.last_error) == (
        "t3",
        "recipients",
        "no valid recipient: '???'",
    )
    await store.close()


async def test_backlog_is_read_a_page_at_a_time_partly_sent_job_first(tmp_path: Path) -> None:
    store = SQLiteOutbox(tmp_path / "o.db")
    for i in range(7):
        await store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0 + i)
    ids = [j.id for j in await store.pending_jobs("t1", 200.0, 100)]
    first_page = await store.pending_jobs("t1", 200.0, 3)
    assert [j.id for j in first_page] == ids[:3]
    second_page = await store.pending_jobs("t1", 200.0, 3, after_id=first_page[-1].id)
    assert [j.id for j in second_page] == ids[3:6]
    # A job already partly sent (a resumed digest has a late id) comes first, however deep it lies.
    await store.progress(ids[5], 1, 150.0)
    assert [j.id for j in await store.pending_jobs("t1", 200.0, 3)] == [ids[5], *ids[:3]]
    assert [j.id for j in await store.pending_jobs("t1", 200.0, 3, after_id=ids[3])] == ids[4:7]
    await store.close()


async def test_reads_see_every_write_that_was_awaited(tmp_path: Path) -> None:
    # Reads go through their own connection and thread: an awaited write must be visible to them.
    store = SQLiteOutbox(tmp_path / "o.db")
    for i in range(50):
        await store.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0)
        [job] = await store.pending_jobs("t1", 200.0, 1)
        await store.done(job.id, 101.0)
        assert await store.pending_jobs("t1", 200.0, 1) == []
    assert (await store.stats(200.0)).pending == 0
    await store.close()


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
