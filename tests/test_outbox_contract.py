"""The `Outbox` contract (outbox/base.py), checked for every backend through the interface only.

A backend is a factory that opens an outbox on storage of its own for the test: calling it again opens
the same storage again, which is what a restart (or a crash: nothing is flushed on purpose) looks like.
Adding a backend is one entry in BACKENDS. No SQL and no private attributes here: what a test needs to
see must be visible through the interface, or it is not part of the contract.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from alertmanager_wecom.outbox import (
    Job,
    JobState,
    LeaseLost,
    NewJob,
    Outbox,
    OutboxStats,
    OutboxUnavailable,
    SendClaim,
    SQLiteOutbox,
)
from alertmanager_wecom.outbox.redis import RedisOutbox
from alertmanager_wecom.reasons import Reason

pytestmark = pytest.mark.anyio
JOBS = [NewJob("t1", '{"app": "ops", "to_user": ["a"]}'), NewJob("t2", '{"app": "ops", "to_user": ["b"]}')]

Opener = Callable[[], Outbox]


def _sqlite(tmp_path: Path, redis_url: str) -> Opener:
    return lambda: SQLiteOutbox(tmp_path / "outbox.db", synchronous="normal")


def _redis(tmp_path: Path, redis_url: str) -> Opener:
    """One redis-server per test worker; each test its own key prefix (its own outbox)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return lambda: RedisOutbox(redis_url, key_prefix=prefix)


BACKENDS: dict[str, Callable[[Path, str], Opener]] = {"sqlite": _sqlite, "redis": _redis}


@pytest.fixture(params=sorted(BACKENDS))
def factory(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Opener:
    """The backend's opener (the worker's redis-server is started for either: it is started once)."""
    return BACKENDS[request.param](tmp_path, redis_url)


@pytest.fixture
async def reopen(factory: Opener) -> AsyncIterator[Opener]:
    """Opens the test's outbox (again): every outbox opened is closed at the end."""
    opened: list[Outbox] = []

    def open_again() -> Outbox:
        opened.append(factory())
        return opened[-1]

    yield open_again
    for store in opened:
        await store.close()


@pytest.fixture
def outbox(reopen: Opener) -> Outbox:
    return reopen()


def with_payload(payload: str, base: list[NewJob]) -> list[NewJob]:
    return [dataclasses.replace(job, payload=payload) for job in base]


async def add(store: Outbox, count: int, target: list[NewJob] = JOBS[:1], start: float = 100.0) -> list[Job]:
    """`count` notifications for the target, one a second from `start`; returns their pending jobs."""
    for i in range(count):
        await store.accept("r", with_payload(f'{{"n": {i}}}', target), None, 0, start + i)
    return await store.pending_jobs(target[0].target_key, start + 10_000, 1000)


async def job(store: Outbox, job_id: int) -> Job:
    found = await store.get_job(job_id)
    assert found is not None
    return found


# -- accept -----------------------------------------------------------------------------------------


async def test_accept_is_durable_across_reopen(reopen: Opener) -> None:
    store = reopen()
    result = await store.accept("r", with_payload('{"x": 1}', JOBS), "k1", 300, now=100.0)
    assert result.notification_id is not None and not result.duplicate
    await store.close()
    reopened = reopen()
    jobs = await reopened.pending_jobs("t1", now=100.0, limit=10)
    assert [(j.receiver, j.payload, j.state) for j in jobs] == [("r", '{"x": 1}', JobState.PENDING)]
    assert [(j.attempts, j.sent_parts, j.created_at, j.digest_of, j.inflight) for j in jobs] == [
        (0, 0, 100.0, 0, False)
    ]
    assert jobs[0].notification_id == result.notification_id
    assert sorted(await reopened.pending_targets()) == ["t1", "t2"]
    assert await reopened.next_due(["t1", "t2", "t3"]) == {"t1": 100.0, "t2": 100.0, "t3": None}


async def test_concurrent_accepts_all_land(outbox: Outbox) -> None:
    results = await asyncio.gather(
        *(
            outbox.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), f"k{i}", 300, 100.0)
            for i in range(300)
        )
    )
    assert len({r.notification_id for r in results}) == 300
    assert len(await outbox.pending_jobs("t1", 100.0, 1000)) == 300


async def test_dedup_window_counts_from_the_acceptance_that_stored_the_key(outbox: Outbox) -> None:
    assert not (await outbox.accept("r", with_payload("{}", JOBS), "same", 300, 100.0)).duplicate
    duplicate = await outbox.accept("r", with_payload("{}", JOBS), "same", 300, 399.0)
    assert duplicate.duplicate and duplicate.notification_id is None
    # 401 is within 300 s of the duplicate at 399: the duplicate did not extend the window.
    assert not (await outbox.accept("r", with_payload("{}", JOBS), "same", 300, 401.0)).duplicate  # a repeat
    assert len(await outbox.pending_jobs("t1", 500.0, 10)) == 2
    # Another key, or none, is never a duplicate.
    assert not (await outbox.accept("r", with_payload("{}", JOBS), "other", 300, 402.0)).duplicate
    assert not (await outbox.accept("r", with_payload("{}", JOBS), None, 300, 402.0)).duplicate
    assert not (await outbox.accept("r", with_payload("{}", JOBS), None, 300, 402.0)).duplicate
    assert len(await outbox.pending_jobs("t1", 500.0, 10)) == 5


async def test_dedup_keys_survive_a_reopen(reopen: Opener) -> None:
    store = reopen()
    await store.accept("r", with_payload("{}", JOBS), "k", 300, 100.0)
    await store.close()
    assert (await reopen().accept("r", with_payload("{}", JOBS), "k", 300, 200.0)).duplicate


async def test_routed_jobs_keep_their_own_payloads_and_dead_reasons(outbox: Outbox) -> None:
    routed = [
        NewJob("t1", "{}", payload='{"alerts": "all"}'),
        NewJob("t2", "{}", payload='{"alerts": "critical only"}'),
        NewJob("t3", "{}", payload='{"alerts": "owner=???"}', dead_reason="no valid recipient: '???'"),
    ]
    await outbox.accept("r", routed, None, 0, 100.0)
    assert [j.payload for j in await outbox.pending_jobs("t2", 100.0, 10)] == ['{"alerts": "critical only"}']
    [dead] = await outbox.list_jobs(JobState.DEAD, 10)
    assert (dead.target_key, dead.reason, dead.last_error) == (
        "t3",
        "recipients",
        "no valid recipient: '???'",
    )
    assert dead.reason == Reason.RECIPIENTS
    assert await outbox.pending_jobs("t3", 100.0, 10) == []
    assert sorted(await outbox.pending_targets()) == ["t1", "t2"]
    assert (await outbox.stats(100.0)).dead == 1


async def test_jobs_sharing_a_payload_share_the_notification(outbox: Outbox) -> None:
    shared = '{"alerts": "all"}'
    result = await outbox.accept("r", with_payload(shared, JOBS), None, 0, 100.0)
    [one] = await outbox.pending_jobs("t1", 100.0, 10)
    [two] = await outbox.pending_jobs("t2", 100.0, 10)
    assert one.notification_id == two.notification_id == result.notification_id
    assert one.payload == two.payload == shared


async def test_a_jobs_traceparent_is_kept_as_accepted_and_a_digest_takes_the_first(reopen: Opener) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    store = reopen()
    jobs = with_payload('{"x": 1}', [dataclasses.replace(JOBS[0], traceparent=traceparent), JOBS[1]])
    dead = NewJob("t3", "{}", '{"x": 1}', dead_reason="no valid recipient", traceparent=traceparent)
    await store.accept("r", [*jobs, dead], None, 0, 100.0)
    await store.close()
    reopened = reopen()  # what a restart reads: the delivery continues the webhook's trace
    [first] = await reopened.pending_jobs("t1", 100.0, 10)
    [second] = await reopened.pending_jobs("t2", 100.0, 10)
    [dead_job] = await reopened.list_jobs(JobState.DEAD, 10)
    assert (first.traceparent, second.traceparent, dead_job.traceparent) == (traceparent, None, traceparent)
    assert (await job(reopened, first.id)).traceparent == traceparent
    await reopened.accept("r", with_payload('{"y": 1}', JOBS[:1]), None, 0, 101.0)
    without, with_ = sorted(await reopened.pending_jobs("t1", 101.0, 10), key=lambda j: j.traceparent or "")
    digest = await reopened.merge([without, with_], '{"digest": 1}', 2, 102.0)
    assert digest.traceparent == traceparent and (await job(reopened, digest.id)).traceparent == traceparent
    plain = await reopened.merge(await reopened.pending_jobs("t2", 102.0, 10), '{"digest": 2}', 1, 103.0)
    assert plain.traceparent is None


async def test_payload_given_as_bytes_is_stored_as_text(outbox: Outbox) -> None:
    await outbox.accept("r", [NewJob("t1", "{}", payload='{"summary": "磁盘"}'.encode())], None, 0, 100.0)
    [stored] = await outbox.pending_jobs("t1", 100.0, 10)
    assert stored.payload == '{"summary": "磁盘"}'
    # Bytes that are not UTF-8 (no webhook's: its JSON parser refuses them) are stored decoded with
    # replacement characters, so that they can be read back.
    await outbox.accept("r", [NewJob("t2", "{}", payload=b'{"summary": "\xe7\xa3\xff"}')], None, 0, 100.0)
    [odd] = await outbox.pending_jobs("t2", 100.0, 10)
    assert odd.payload == '{"summary": "\ufffd\ufffd"}'


# -- ordering ---------------------------------------------------------------------------------------


async def test_jobs_are_handed_out_first_in_first_out_per_target(outbox: Outbox) -> None:
    for i in range(6):
        target = JOBS[i % 2 : i % 2 + 1]
        await outbox.accept("r", with_payload(f'{{"n": {i}}}', target), None, 0, 100.0 + i)
    assert [j.payload for j in await outbox.pending_jobs("t1", 200.0, 10)] == [
        '{"n": 0}',
        '{"n": 2}',
        '{"n": 4}',
    ]
    assert [j.payload for j in await outbox.pending_jobs("t2", 200.0, 10)] == [
        '{"n": 1}',
        '{"n": 3}',
        '{"n": 5}',
    ]
    ids = [j.id for j in await outbox.list_jobs(None, 10)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6  # increasing in the order stored


async def test_a_job_is_handed_out_only_once_due(outbox: Outbox) -> None:
    [first, second] = await add(outbox, 2)
    assert [j.id for j in await outbox.pending_jobs("t1", 100.5, 10)] == [first.id]
    assert await outbox.pending_jobs("t1", 99.0, 10) == []
    assert await outbox.next_due(["t1"]) == {"t1": 100.0}
    assert second.next_attempt_at == 101.0


async def test_a_job_due_later_waits_until_its_time_survives_a_reopen(reopen: Opener) -> None:
    # An escalation step: stored now, due later; the age clock starts at the accept.
    store = reopen()
    later = [dataclasses.replace(JOBS[0], payload='{"step": 1}', due_at=700.5)]
    await store.accept("r", later, None, 0, 100.0)
    assert await store.pending_jobs("t1", 700.0, 10) == []
    assert await store.next_due(["t1"]) == {"t1": 700.5}
    await store.close()
    again = reopen()
    assert await again.next_due(["t1"]) == {"t1": 700.5}
    [due] = await again.pending_jobs("t1", 700.5, 10)
    assert (due.payload, due.created_at, due.next_attempt_at) == ('{"step": 1}', 100.0, 700.5)
    assert (await again.stats(200.0)).pending == 1


async def test_backlog_is_read_a_page_at_a_time_partly_sent_job_first(outbox: Outbox) -> None:
    ids = [j.id for j in await add(outbox, 7)]
    first_page = await outbox.pending_jobs("t1", 200.0, 3)
    assert [j.id for j in first_page] == ids[:3]
    second_page = await outbox.pending_jobs("t1", 200.0, 3, after_id=first_page[-1].id)
    assert [j.id for j in second_page] == ids[3:6]
    # A job already partly sent (a resumed digest has a late id) comes first, however deep it lies.
    await outbox.progress(ids[5], 1, 150.0)
    assert [j.id for j in await outbox.pending_jobs("t1", 200.0, 3)] == [ids[5], *ids[:3]]
    assert [j.id for j in await outbox.pending_jobs("t1", 200.0, 3, after_id=ids[3])] == ids[4:7]


async def test_a_job_in_flight_comes_first_too(outbox: Outbox) -> None:
    ids = [j.id for j in await add(outbox, 4)]
    await outbox.sending(ids[2], 150.0)
    page = await outbox.pending_jobs("t1", 200.0, 2)
    assert [(j.id, j.inflight) for j in page] == [(ids[2], True), (ids[0], False), (ids[1], False)]


async def test_retry_later_holds_back_the_whole_target(outbox: Outbox) -> None:
    first, second, third = await add(outbox, 3)
    await outbox.accept("r", with_payload("{}", JOBS[1:]), None, 0, 100.0)  # another target
    await outbox.progress(first.id, 2, 150.0)
    await outbox.retry_later(first.id, 1, 300.0, "system busy", Reason.BUSY, 150.0)
    # the whole target waits behind the failed job: order is kept
    assert await outbox.pending_jobs("t1", 299.0, 10) == []
    assert await outbox.next_due(["t1", "t2"]) == {"t1": 300.0, "t2": 100.0}
    assert len(await outbox.pending_jobs("t2", 299.0, 10)) == 1  # other targets do not wait
    page = await outbox.pending_jobs("t1", 300.0, 10)
    assert [j.id for j in page] == [first.id, second.id, third.id]
    job = page[0]
    assert (job.id, job.sent_parts, job.attempts, job.last_error) == (first.id, 2, 1, "system busy")
    assert (job.reason, job.next_attempt_at, job.state) == (Reason.BUSY, 300.0, JobState.PENDING)


async def test_retry_later_never_brings_a_job_forward(outbox: Outbox) -> None:
    first, second = await add(outbox, 2)
    await outbox.retry_later(second.id, 3, 500.0, "busy", Reason.BUSY, 150.0)
    await outbox.retry_later(first.id, 1, 200.0, "busy", Reason.BUSY, 160.0)
    assert [(j.id, j.next_attempt_at) for j in await outbox.pending_jobs("t1", 500.0, 10)] == [
        (first.id, 200.0),
        (second.id, 500.0),
    ]


@pytest.mark.parametrize("restart", [False, True])
async def test_a_later_notification_never_overtakes_a_failed_one(reopen: Opener, restart: bool) -> None:
    store = reopen()
    [first] = await add(store, 1)
    await store.retry_later(first.id, 1, 300.0, "busy", Reason.BUSY, 150.0)
    if restart:  # the dispatcher's in-memory cooldown is gone: the outbox alone keeps the order
        await store.close()
        store = reopen()
    await store.accept("r", with_payload('{"late": 1}', JOBS[:1]), None, 0, 160.0)
    assert await store.next_due(["t1"]) == {"t1": 300.0}
    assert await store.pending_jobs("t1", 299.0, 10) == []
    page = await store.pending_jobs("t1", 300.0, 10)
    assert (page[0].id, page[1].payload) == (first.id, '{"late": 1}')


async def test_retry_later_sets_inflight_to_maybe_delivered(outbox: Outbox) -> None:
    first, second = await add(outbox, 2)
    for job_id in (first.id, second.id):
        await outbox.sending(job_id, 150.0)
    await outbox.retry_later(first.id, 1, 200.0, "timeout", Reason.NETWORK, 150.0, maybe_delivered=True)
    await outbox.retry_later(second.id, 1, 200.0, "refused", Reason.NETWORK, 150.0)
    assert [(j.id, j.inflight) for j in await outbox.pending_jobs("t1", 200.0, 10)] == [
        (first.id, True),
        (second.id, False),
    ]


# -- write-ahead and restarts -----------------------------------------------------------------------


async def test_write_ahead_survives_a_restart(reopen: Opener) -> None:
    store = reopen()
    first, second, third = await add(store, 3)
    await store.sending(first.id, 150.0)
    await store.progress(first.id, 1, 151.0)
    await store.sending(first.id, 152.0)  # then the process dies, with message 2 maybe sent
    await store.sending(third.id, 152.0)
    await store.progress(third.id, 1, 153.0)  # message 1 of the third job accepted, not in flight
    await store.close()
    reopened = reopen()
    page = await reopened.pending_jobs("t1", 200.0, 10)
    assert [(j.id, j.sent_parts, j.inflight) for j in page] == [
        (first.id, 1, True),
        (third.id, 1, False),
        (second.id, 0, False),
    ]
    await reopened.progress(first.id, 2, 201.0)
    assert (await job(reopened, first.id)).inflight is False


async def test_sending_and_progress_can_be_repeated(outbox: Outbox) -> None:
    [first] = await add(outbox, 1)
    for _ in range(2):
        await outbox.sending(first.id, 150.0)
    assert (await job(outbox, first.id)).inflight
    for _ in range(2):
        await outbox.progress(first.id, 1, 151.0)
    stored = await job(outbox, first.id)
    assert (stored.sent_parts, stored.inflight, stored.state) == (1, False, JobState.PENDING)


async def test_every_change_survives_a_restart(reopen: Opener) -> None:
    store = reopen()
    first, second, third, fourth = await add(store, 4)
    await store.done(first.id, 150.0)
    await store.dead(second.id, "WeCom errcode 60020", Reason.TRUSTED_IP, 150.0)
    await store.retry_later(third.id, 2, 400.0, "busy", Reason.BUSY, 150.0)
    digest = await store.merge([fourth], '{"digest": 1}', 1, 150.0)
    await store.record_send(["u:a"], 150.0)
    await store.close()
    reopened = reopen()
    assert (await job(reopened, first.id)).state is JobState.DONE
    dead = await job(reopened, second.id)
    assert (dead.state, dead.reason, dead.last_error) == (JobState.DEAD, "trusted_ip", "WeCom errcode 60020")
    retried = await job(reopened, third.id)
    assert (retried.attempts, retried.next_attempt_at) == (2, 400.0)
    assert (await job(reopened, fourth.id)).merged_into == digest.id
    assert (await job(reopened, digest.id)).payload == '{"digest": 1}'
    assert await reopened.recent_sends(0.0) == [("u:a", 150.0)]


async def test_reads_see_every_write_that_was_awaited(outbox: Outbox) -> None:
    for i in range(50):
        await outbox.accept("r", with_payload(f'{{"n": {i}}}', JOBS[:1]), None, 0, 100.0)
        [stored] = await outbox.pending_jobs("t1", 200.0, 1)
        await outbox.done(stored.id, 101.0)
        assert await outbox.pending_jobs("t1", 200.0, 1) == []
    assert (await outbox.stats(200.0)).pending == 0


async def test_another_outbox_on_the_same_storage_sees_awaited_writes(reopen: Opener) -> None:
    relay, operator = reopen(), reopen()
    [first] = await add(relay, 1)
    await relay.dead(first.id, "gone", Reason.CONFIG, 150.0)
    assert [j.id for j in await operator.list_jobs(JobState.DEAD, 10)] == [first.id]
    assert await operator.requeue(None, 160.0) == 1
    assert [j.id for j in await relay.pending_jobs("t1", 160.0, 10)] == [first.id]


# -- done, dead letters, requeue, purge, stats ------------------------------------------------------


async def test_progress_retry_dead_requeue_purge_and_stats(outbox: Outbox) -> None:
    first, second, third = await add(outbox, 3)
    await outbox.progress(first.id, 2, 150.0)
    await outbox.retry_later(first.id, 1, 300.0, "system busy", Reason.BUSY, 150.0)
    assert await outbox.pending_jobs("t1", 299.0, 10) == []
    await outbox.dead(second.id, "WeCom errcode 60020", Reason.TRUSTED_IP, 310.0)
    await outbox.done(third.id, 310.0)
    stats = await outbox.stats(now=400.0)
    assert (stats.pending, stats.dead, stats.oldest_pending_age) == (1, 1, 300.0)
    assert [j.id for j in await outbox.list_jobs(JobState.DEAD, 10)] == [second.id]
    assert await outbox.requeue([second.id], 500.0) == 1
    assert (await job(outbox, second.id)).state is JobState.PENDING
    assert await outbox.purge([JobState.DONE], older_than=1000.0) == 1
    assert await outbox.get_job(third.id) is None


async def test_done_clears_the_error_and_can_be_repeated(outbox: Outbox) -> None:
    [first] = await add(outbox, 1)
    await outbox.retry_later(first.id, 1, 150.0, "busy", Reason.BUSY, 120.0)
    for _ in range(2):
        await outbox.done(first.id, 160.0)
    stored = await job(outbox, first.id)
    assert (stored.state, stored.last_error, stored.updated_at) == (JobState.DONE, None, 160.0)
    assert await outbox.pending_jobs("t1", 1000.0, 10) == []
    assert await outbox.pending_targets() == []
    assert await outbox.next_due(["t1"]) == {"t1": None}


async def test_a_dead_letter_keeps_its_progress_and_leaves_the_line(outbox: Outbox) -> None:
    first, second = await add(outbox, 2)
    await outbox.progress(first.id, 1, 150.0)
    await outbox.retry_later(first.id, 2, 160.0, "busy", Reason.BUSY, 150.0)
    await outbox.dead(first.id, "gave up", Reason.BUSY, 170.0)
    await outbox.dead(first.id, "cannot render", Reason.BAD_MESSAGE, 171.0)  # repeated: overwrites
    stored = await job(outbox, first.id)
    assert (stored.state, stored.attempts, stored.sent_parts) == (JobState.DEAD, 2, 1)
    assert (stored.last_error, stored.reason) == ("cannot render", "bad_message")
    assert [j.id for j in await outbox.pending_jobs("t1", 200.0, 10)] == [second.id]


async def test_requeue_restarts_the_age_clock_and_keeps_the_parts_sent(outbox: Outbox) -> None:
    first, second = await add(outbox, 2)
    await outbox.progress(first.id, 2, 150.0)
    await outbox.retry_later(first.id, 4, 900.0, "busy", Reason.BUSY, 150.0)
    await outbox.dead(first.id, "too old", Reason.BUSY, 160.0)
    assert await outbox.requeue([first.id, first.id, second.id, 10**9], 500.0) == 1  # second is not dead
    stored = await job(outbox, first.id)
    assert (stored.state, stored.attempts, stored.sent_parts) == (JobState.PENDING, 0, 2)
    assert (stored.created_at, stored.next_attempt_at) == (500.0, 500.0)
    assert (await outbox.stats(600.0)).oldest_pending_age == 499.0  # the second job, created at 101
    # The second job still waits where the failure put it; the requeued one keeps its id, hence its place.
    assert [j.id for j in await outbox.pending_jobs("t1", 500.0, 10)] == [first.id]
    assert [j.id for j in await outbox.pending_jobs("t1", 900.0, 10)] == [first.id, second.id]
    assert await outbox.requeue([first.id], 510.0) == 0  # nothing more to requeue


async def test_requeue_of_every_dead_letter(outbox: Outbox) -> None:
    jobs = await add(outbox, 3)
    for stored in jobs[:2]:
        await outbox.dead(stored.id, "gone", Reason.CONFIG, 150.0)
    assert await outbox.requeue(None, 200.0) == 2
    assert await outbox.requeue(None, 200.0) == 0
    assert (await outbox.stats(200.0)).dead == 0
    assert len(await outbox.pending_jobs("t1", 200.0, 10)) == 3


async def test_purge_deletes_old_finished_jobs_only(outbox: Outbox) -> None:
    done, dead, merged, old_pending, young_done = await add(outbox, 5)
    await outbox.done(done.id, 150.0)
    await outbox.dead(dead.id, "gone", Reason.CONFIG, 150.0)
    digest = await outbox.merge([merged], "{}", 1, 150.0)
    await outbox.done(young_done.id, 300.0)
    assert await outbox.purge([JobState.DONE, JobState.MERGED], older_than=200.0) == 2
    assert await outbox.get_job(done.id) is None and await outbox.get_job(merged.id) is None
    assert (await job(outbox, young_done.id)).state is JobState.DONE  # changed after older_than
    assert (await job(outbox, dead.id)).state is JobState.DEAD  # not among the states
    assert (await job(outbox, old_pending.id)).state is JobState.PENDING
    assert (await job(outbox, digest.id)).payload == "{}"
    assert await outbox.purge([JobState.DONE, JobState.MERGED], older_than=200.0) == 0
    assert await outbox.purge([JobState.DEAD], older_than=200.0) == 1


async def test_purge_of_chosen_jobs(outbox: Outbox) -> None:
    """The console purges one dead letter: only the ids given, and still only in the states given."""
    first, second, pending = await add(outbox, 3)
    await outbox.dead(first.id, "gone", Reason.CONFIG, 150.0)
    await outbox.dead(second.id, "gone", Reason.CONFIG, 150.0)
    assert await outbox.purge([JobState.DEAD], 1e12, job_ids=[second.id, pending.id]) == 1
    assert await outbox.get_job(second.id) is None
    assert (await job(outbox, first.id)).state is JobState.DEAD
    assert (await job(outbox, pending.id)).state is JobState.PENDING
    assert await outbox.purge([JobState.DEAD], 1e12, job_ids=[]) == 0


async def test_purge_leaves_dedup_keys_and_sends_alone(outbox: Outbox) -> None:
    await outbox.accept("r", with_payload("{}", JOBS[:1]), "k", 300, 100.0)
    [stored] = await outbox.pending_jobs("t1", 100.0, 10)
    await outbox.record_send(["u:a"], 100.0)
    await outbox.done(stored.id, 100.0)
    assert await outbox.purge([JobState.DONE], older_than=1000.0) == 1
    assert await outbox.recent_sends(0.0) == [("u:a", 100.0)]
    assert (await outbox.accept("r", with_payload("{}", JOBS[:1]), "k", 300, 200.0)).duplicate


async def test_stats_count_pending_due_or_not_and_dead(outbox: Outbox) -> None:
    assert await outbox.stats(100.0) == OutboxStats(0, 0, 0.0)
    first, second, _third = await add(outbox, 3, start=100.0)
    await outbox.retry_later(first.id, 1, 10_000.0, "busy", Reason.BUSY, 150.0)
    await outbox.dead(second.id, "gone", Reason.CONFIG, 150.0)
    stats = await outbox.stats(160.0)
    assert (stats.pending, stats.dead, stats.oldest_pending_age) == (2, 1, 60.0)
    assert (await outbox.stats(50.0)).oldest_pending_age == 0.0  # never negative


async def test_list_and_get_jobs(outbox: Outbox) -> None:
    first, second, third = await add(outbox, 3)
    await outbox.done(second.id, 150.0)
    assert [j.id for j in await outbox.list_jobs(None, 10)] == [third.id, second.id, first.id]
    assert [j.id for j in await outbox.list_jobs(None, 2)] == [third.id, second.id]
    assert [j.id for j in await outbox.list_jobs(JobState.PENDING, 10)] == [third.id, first.id]
    assert [j.id for j in await outbox.list_jobs(JobState.DONE, 10)] == [second.id]
    assert await outbox.list_jobs(JobState.MERGED, 10) == []
    stored = await job(outbox, second.id)
    assert (stored.state, stored.receiver, stored.target_spec, stored.payload) == (
        JobState.DONE,
        "r",
        JOBS[0].target_spec,
        '{"n": 1}',
    )
    assert await outbox.get_job(10**9) is None


async def test_unknown_job_ids_are_ignored(outbox: Outbox) -> None:
    [first] = await add(outbox, 1)
    unknown = first.id + 1000
    await outbox.sending(unknown, 150.0)
    await outbox.progress(unknown, 1, 150.0)
    await outbox.retry_later(unknown, 1, 900.0, "busy", Reason.BUSY, 150.0)
    await outbox.dead(unknown, "gone", Reason.CONFIG, 150.0)
    await outbox.done(unknown, 150.0)
    assert await outbox.requeue([unknown], 150.0) == 0
    assert await outbox.get_job(unknown) is None
    assert await outbox.pending_jobs("t1", 150.0, 10) == [first]


# -- digests ----------------------------------------------------------------------------------------


async def test_merge_makes_one_digest_job(outbox: Outbox) -> None:
    jobs = await add(outbox, 3)
    digest = await outbox.merge(jobs, '{"digest": true}', 3, 200.0)
    assert (digest.digest_of, digest.payload, digest.created_at, digest.target_key) == (
        3,
        '{"digest": true}',
        100.0,
        "t1",
    )
    assert (digest.state, digest.attempts, digest.sent_parts, digest.inflight) == (
        JobState.PENDING,
        0,
        0,
        False,
    )
    assert (digest.receiver, digest.target_spec, digest.next_attempt_at) == ("r", JOBS[0].target_spec, 200.0)
    assert digest.id > max(j.id for j in jobs)
    assert digest.notification_id not in {j.notification_id for j in jobs}
    assert [j.id for j in await outbox.pending_jobs("t1", 200.0, 10)] == [digest.id]
    merged = await outbox.list_jobs(JobState.MERGED, 10)
    assert {j.merged_into for j in merged} == {digest.id}
    assert sorted(j.payload for j in merged) == ['{"n": 0}', '{"n": 1}', '{"n": 2}']  # kept for operators
    assert await job(outbox, digest.id) == digest


async def test_a_digest_goes_after_the_jobs_it_did_not_merge(outbox: Outbox) -> None:
    first, second, third = await add(outbox, 3)
    digest = await outbox.merge([first, second], "{}", 2, 200.0)
    assert [j.id for j in await outbox.pending_jobs("t1", 200.0, 10)] == [third.id, digest.id]
    assert (await outbox.stats(200.0)).oldest_pending_age == 100.0  # the digest's age is its oldest job's


# -- sends, housekeeping, closing -------------------------------------------------------------------


async def test_sends_are_remembered(outbox: Outbox) -> None:
    await outbox.record_send(["u:a", "u:b"], 100.0)
    await outbox.record_send(["u:a"], 50.0)
    assert await outbox.recent_sends(since=60.0) == [("u:a", 100.0), ("u:b", 100.0)]
    await outbox.forget(dedup_before=0.0, sends_before=75.0)
    assert await outbox.recent_sends(since=0.0) == [("u:a", 100.0), ("u:b", 100.0)]


async def test_sends_are_kept_in_the_order_recorded(outbox: Outbox) -> None:
    await outbox.record_send(["u:b"], 100.0)
    await outbox.record_send(["u:a", "u:c"], 100.0)
    await outbox.record_send(["u:b"], 100.0)  # not idempotent: a second send
    await outbox.record_send(["u:z"], 90.0)
    assert await outbox.recent_sends(since=100.0) == [
        ("u:b", 100.0),
        ("u:a", 100.0),
        ("u:c", 100.0),
        ("u:b", 100.0),
    ]


async def test_forget_drops_old_dedup_keys(outbox: Outbox) -> None:
    await outbox.accept("r", with_payload("{}", JOBS), "old", 3600, 100.0)
    await outbox.accept("r", with_payload("{}", JOBS), "young", 3600, 200.0)
    await outbox.record_send(["u:a"], 100.0)
    await outbox.forget(dedup_before=150.0, sends_before=0.0)
    assert not (await outbox.accept("r", with_payload("{}", JOBS), "old", 3600, 300.0)).duplicate
    assert (await outbox.accept("r", with_payload("{}", JOBS), "young", 3600, 300.0)).duplicate
    assert await outbox.recent_sends(0.0) == [("u:a", 100.0)]


async def test_a_closed_outbox_refuses_every_call(outbox: Outbox) -> None:
    [first] = await add(outbox, 1)
    assert await outbox.check_writable(200.0) is None
    await outbox.close()
    await outbox.close()  # idempotent
    with pytest.raises(OutboxUnavailable):
        await outbox.accept("r", with_payload("{}", JOBS), None, 0, 100.0)
    with pytest.raises(OutboxUnavailable):
        await outbox.pending_jobs("t1", 200.0, 10)
    with pytest.raises(OutboxUnavailable):
        await outbox.done(first.id, 200.0)
    assert await outbox.check_writable(200.0) is not None


async def test_other_processes_hear_of_new_targets_or_listen_returns(reopen: Opener) -> None:
    """A shared backend tells every listener which targets got jobs; a one-process one returns at once."""
    listener, writer = reopen(), reopen()
    heard: list[list[str]] = []
    task = asyncio.create_task(listener.listen(heard.append))
    if not listener.shared:
        await asyncio.wait_for(task, 5)
        assert heard == []
        assert await writer.lease("t1", "a", 30) and await writer.lease("t1", "b", 30)  # nobody to share with
        return
    # A listener hears only what is published after it has subscribed, and when that is the interface
    # does not say: notifications are committed until one is heard (each says the same).
    for _ in range(100):
        await writer.accept("r", JOBS, None, 0, 100.0)
        for _ in range(10):
            if heard:
                break
            await asyncio.sleep(0.01)
        if heard:
            break
    task.cancel()
    assert heard and all(sorted(targets) == ["t1", "t2"] for targets in heard)
    assert await writer.lease("t1", "a", 30) and not await listener.lease("t1", "b", 30)  # one holder
    assert await writer.lease("t1", "a", 30)  # extended by its holder
    await writer.release("t1", "b")  # not b's to release
    assert not await listener.lease("t1", "b", 30)
    await writer.release("t1", "a")
    assert await listener.lease("t1", "b", 30)


async def test_a_send_wecom_refused_for_good_is_given_back(reopen: Opener) -> None:
    """A permanent failure WeCom answered (an invalid user, a bad message) frees the slot its write-ahead
    took, as a transient one does; a job given up after a send that may have reached WeCom keeps it."""
    mine = reopen()
    if not mine.shared:
        return  # one process: a send is recorded only once WeCom took it
    first, second, third = await add(mine, 3)
    person = ("member:zhangsan", ((2, 60.0),))
    assert await mine.lease("t1", "a", 30)
    assert (await mine.sending(first.id, 100.0, SendClaim("t1", "a", (person,)))).wait == 0
    assert (await mine.sending(second.id, 101.0, SendClaim("t1", "a", (person,)))).wait == 0
    assert (await mine.sending(third.id, 102.0, SendClaim("t1", "a", (person,)))).wait > 0  # full

    await mine.dead(first.id, "errcode 81013", Reason.RECIPIENTS, 103.0, refused=True)
    assert ("member:zhangsan", 100.0) not in await mine.recent_sends(0)
    assert (await mine.sending(third.id, 104.0, SendClaim("t1", "a", (person,)))).wait == 0  # room again
    await mine.dead(first.id, "errcode 81013", Reason.RECIPIENTS, 105.0, refused=True)  # again: nothing more

    await mine.dead(second.id, "gave up: timeouts", Reason.NETWORK, 106.0)  # may have reached WeCom
    assert sorted(await mine.recent_sends(0)) == [("member:zhangsan", 101.0), ("member:zhangsan", 104.0)]
    assert (await job(mine, first.id)).state is JobState.DEAD


async def test_a_send_that_is_no_jobs_is_counted_with_every_replicas_sends(reopen: Opener) -> None:
    """A chart (`claim_send`): counted against the same windows as the jobs' claims, by any replica, in
    one step; no lease needed; no room: nothing recorded. One process records it (its limiter decided)."""
    mine, other = reopen(), reopen()
    person = ("member:zhangsan", ((2, 60.0),))
    if not mine.shared:
        ahead = await mine.claim_send(100.0, SendClaim("t1", "a", (person,)))
        assert ahead.wait == 0
        await mine.sent(ahead.counted, 103.0)  # its limiter paces it: the record stays as it was
        assert await mine.recent_sends(0) == [("member:zhangsan", 100.0)]
        return
    [first] = await add(mine, 1)
    assert await mine.lease("t1", "a", 30)
    assert (await mine.sending(first.id, 100.0, SendClaim("t1", "a", (person,)))).wait == 0
    # b holds no lease on t1 and needs none; the person's window has room for one more.
    assert (await other.claim_send(101.0, SendClaim("t1", "b", (person,)))).wait == 0
    full = await mine.claim_send(102.0, SendClaim("t1", "a", (person,)))
    assert full.wait == pytest.approx(58.0) and sorted(full.sends["member:zhangsan"]) == [100.0, 101.0]
    assert sorted(await mine.recent_sends(0)) == [("member:zhangsan", 100.0), ("member:zhangsan", 101.0)]
    late = await other.claim_send(160.5, SendClaim("t1", "b", (person,)))
    assert late.wait == 0 and len(late.counted) == 1
    assert (await job(mine, first.id)).inflight  # the job's own write-ahead is untouched
    # WeCom took b's chart at 163 (the image was uploaded first): it counts from then, as a job's send
    # does from `progress`.
    await other.sent(late.counted, 163.0)
    sends = sorted(await mine.recent_sends(0))
    assert ("member:zhangsan", 163.0) in sends and ("member:zhangsan", 160.5) not in sends
    await other.sent(late.counted, 150.0)  # never earlier than it was
    assert ("member:zhangsan", 163.0) in await mine.recent_sends(0)
    await other.sent((), 170.0)  # nothing counted: nothing to do
    # Any rate key (they come from config names): each entry is moved as it is.
    odd = ("robot:a|b\nc", ((5, 60.0),))
    ahead = await other.claim_send(200.0, SendClaim("t1", "b", (odd, person)))
    await other.sent(ahead.counted, 201.0)
    assert {("robot:a|b\nc", 201.0), ("member:zhangsan", 201.0)} <= set(await mine.recent_sends(0))


async def test_times_come_back_exactly(outbox: Outbox) -> None:
    """Times as the relay's clock gives them (microseconds since 1970) are kept to the last digit, also
    through a merge (a backend that does arithmetic on them must not round them)."""
    at = 1764371234.123456
    jobs = await add(outbox, 2, start=at)
    assert [j.created_at for j in jobs] == [at, at + 1]
    digest = await outbox.merge(jobs, "{}", 2, at + 5.000001)
    assert digest.created_at == at and digest.next_attempt_at == at + 5.000001


async def test_a_claim_writes_ahead_only_under_its_lease_and_within_every_replicas_limits(
    reopen: Opener,
) -> None:
    """Replicas (issue 22): the write-ahead with a claim checks the lease and counts every process's sends
    under the rate keys in the same step; a send WeCom did not take is taken back, one it took is not."""
    mine, other = reopen(), reopen()
    if not mine.shared:
        return  # one process: never given a claim (its own limiter paces it)
    first, second = await add(mine, 2)
    [elsewhere] = await add(mine, 1, target=JOBS[1:])
    person = ("member:zhangsan", ((2, 60.0),))  # the same person in two targets
    day = ("app:ops:day", ((100, 86400.0),))
    assert await mine.lease("t1", "a", 30) and await other.lease("t2", "b", 30)

    with pytest.raises(LeaseLost):  # t1 is a's: b's write-ahead writes nothing
        await other.sending(first.id, 100.0, SendClaim("t1", "b", (person, day)))
    assert not (await job(mine, first.id)).inflight

    assert (await mine.sending(first.id, 100.0, SendClaim("t1", "a", (person, day)))).wait == 0
    assert (await job(mine, first.id)).inflight
    assert (await other.sending(elsewhere.id, 110.0, SendClaim("t2", "b", (person,)))).wait == 0
    assert sorted(await mine.recent_sends(0)) == [
        ("app:ops:day", 100.0),
        ("member:zhangsan", 100.0),
        ("member:zhangsan", 110.0),
    ]
    # The person has had 2 in the minute, one by each replica: no room until the first leaves it.
    full = await mine.sending(second.id, 120.0, SendClaim("t1", "a", (person, day)))
    assert full.wait == pytest.approx(40.0)
    assert sorted(full.sends["member:zhangsan"]) == [100.0, 110.0] and full.sends["app:ops:day"] == [100.0]
    assert not (await job(mine, second.id)).inflight

    # WeCom did not take b's message: it does not count, and there is room again.
    await other.retry_later(elsewhere.id, 1, 130.0, "busy", Reason.RATE_LIMITED, 120.0, maybe_delivered=False)
    assert (await mine.sending(second.id, 120.0, SendClaim("t1", "a", (person,)))).wait == 0
    # WeCom took a's first message: it counts from when WeCom answered (121), not from its claim (100):
    # WeCom counts it when it arrives, seconds later if the replica stalled in between. A later failure
    # of the job does not take it back.
    await mine.progress(first.id, 1, 121.0)
    await mine.retry_later(first.id, 1, 130.0, "busy", Reason.RATE_LIMITED, 121.0, maybe_delivered=False)
    sends = await mine.recent_sends(0)
    assert ("member:zhangsan", 121.0) in sends and ("app:ops:day", 121.0) in sends
    assert ("member:zhangsan", 100.0) not in sends
    # The person's minute holds a's two (120, 121): room when the one of 120 leaves it.
    assert (await other.sending(elsewhere.id, 125.0, SendClaim("t2", "b", (person,)))).wait == pytest.approx(
        55.0
    )
    assert (await other.sending(elsewhere.id, 180.5, SendClaim("t2", "b", (person,)))).wait == 0

    await mine.release("t1", "a")  # nobody holds t1 now: nobody may write ahead for it
    with pytest.raises(LeaseLost):
        await mine.sending(second.id, 200.0, SendClaim("t1", "a", (person,)))
