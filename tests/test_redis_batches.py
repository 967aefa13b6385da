"""The Redis outbox's acceptances in batches (outbox/redis/batch.py, scripts.py's ACCEPT), against a real
redis-server: one script for all the acceptances in flight, each still stored or refused on its own; one
wake-up for the batch, naming each stored target once; with `min_replicas`, an acceptance is answered
only once that many replicas have it (the WAIT on the connection that wrote it)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.connection import AbstractConnection

from alertmanager_wecom.outbox import NewJob, OutboxUnavailable
from alertmanager_wecom.outbox.redis import RedisOutbox
from alertmanager_wecom.outbox.redis.batch import AcceptBatches
from alertmanager_wecom.outbox.redis.calls import RedisCalls
from tests.redis_server import run_redis

TARGET = '{"app": "ops", "to_user": ["zhangsan"]}'


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with run_redis(tmp_path / "redis") as url:
        yield url


def script_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.anyio
async def test_acceptances_in_flight_are_one_script_and_one_wake_up(redis_url: str) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    outbox, listener = RedisOutbox(redis_url, key_prefix=prefix), RedisOutbox(redis_url, key_prefix=prefix)
    heard: list[list[str]] = []
    listening = asyncio.create_task(listener.listen(heard.append))
    try:
        await outbox.accept("default", [NewJob("t0", TARGET, "{}")], "k0", 300, 1.0)
        for _ in range(100):  # until the listener has subscribed (it hears only what comes after)
            if heard:
                break
            await outbox.accept("default", [NewJob("t0", TARGET, "{}")], None, 300, 1.0)
            await asyncio.sleep(0.02)
        assert heard
        heard.clear()
        before = script_calls(redis_url)
        # 30 acceptances at once: 10 to each of three targets; one also to a fourth, one also dead (its
        # target is not woken), and one a duplicate of the first above (nothing stored, nobody woken).
        jobs = [[NewJob(f"t{i % 3}", TARGET, f'{{"n": {i}}}')] for i in range(30)]
        jobs[4].append(NewJob("t3", TARGET, '{"n": 4}'))
        jobs[5].append(NewJob("gone", TARGET, '{"n": 5}', dead_reason="no recipient"))
        keys = [f"b{i}" for i in range(30)]
        keys[7] = "k0"
        results = await asyncio.gather(
            *(outbox.accept("default", each, key, 300, 2.0) for each, key in zip(jobs, keys, strict=True))
        )
        assert [r.duplicate for r in results] == [i == 7 for i in range(30)]
        assert len({r.notification_id for r in results if not r.duplicate}) == 29
        # Sent as they came: the first alone, the other 29 together while it was on its way.
        assert script_calls(redis_url) - before <= 3
        for _ in range(100):
            if {key for message in heard for key in message} >= {"t0", "t1", "t2", "t3"}:
                break
            await asyncio.sleep(0.02)
        woken = [key for message in heard for key in message]
        assert sorted(set(woken)) == ["t0", "t1", "t2", "t3"]
        assert len(woken) <= 3 * 4  # a message per batch, each target once in it: not one per acceptance
        assert all(len(message) == len(set(message)) for message in heard)
        assert sorted(await outbox.pending_targets()) == ["t0", "t1", "t2", "t3"]
    finally:
        listening.cancel()
        await outbox.close()
        await listener.close()


@pytest.mark.anyio
async def test_an_acceptance_that_fails_in_a_batch_fails_alone(redis_url: str) -> None:
    outbox = RedisOutbox(redis_url, key_prefix=f"f{uuid.uuid4().hex[:8]}")
    try:
        good = [
            outbox.accept("default", [NewJob("t", TARGET, f'{{"n": {i}}}')], f"k{i}", 300, 1.0)
            for i in range(5)
        ]
        # An acceptance whose arguments the script cannot read (a payload index that is not a number):
        # Redis's error for it, stored with the others in the same script.
        broken = outbox._accepts.accept(
            ["default", "", 300, "1.0", 1, "{}", 1, "t", TARGET, "x", "", "", ""], "t", False
        )
        *stored, failed = await asyncio.gather(*good, broken, return_exceptions=True)
        assert isinstance(failed, OutboxUnavailable) and "Redis: ResponseError" in str(failed)
        assert all(not isinstance(r, BaseException) and r.notification_id for r in stored), stored
        assert len(await outbox.pending_jobs("t", 2.0, 10)) == 5
    finally:
        await outbox.close()


@pytest.mark.anyio
async def test_with_min_replicas_an_acceptance_is_answered_once_the_replicas_have_it(tmp_path: Path) -> None:
    with run_redis(tmp_path / "primary") as url, run_redis(tmp_path / "replica") as replica_url:
        prefix = f"m{uuid.uuid4().hex[:8]}"
        outbox = RedisOutbox(url, key_prefix=prefix, min_replicas=1, timeout=3.0)
        try:
            # No replica yet: refused after WAIT's second (stored, though: sent again, it is a duplicate,
            # refused the same way until a replica has it).
            with pytest.raises(OutboxUnavailable, match="only 0 of 1 Redis replicas acknowledged"):
                await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k0", 300, 1.0)
            # The readiness probe's test write says so too (/readyz).
            assert await outbox.check_writable(1.0) == "only 0 of 1 Redis replicas acknowledged"

            port = int(url.rsplit(":", 1)[1].split("/")[0])
            replica = redis.Redis.from_url(replica_url, decode_responses=True)
            replica.replicaof("127.0.0.1", port)
            deadline = time.monotonic() + 30
            while True:  # until the replica is in sync and acknowledges within WAIT's second
                assert time.monotonic() < deadline, "the replica did not catch up"
                try:
                    await outbox.accept("default", [NewJob("w", TARGET, "{}")], None, 0, 2.0)
                    break
                except OutboxUnavailable:
                    await asyncio.sleep(0.2)
            results = await asyncio.gather(
                *(
                    outbox.accept("default", [NewJob(f"t{i}", TARGET, f'{{"n": {i}}}')], f"k{i}", 300, 2.0)
                    for i in range(1, 21)
                ),
                return_exceptions=True,
            )
            # Answered: the replica has each one already (read at once, not waited for). On a loaded
            # machine the replica may miss WAIT's second: such an acceptance is refused (503: sent again).
            answered = [r for r in results if not isinstance(r, BaseException)]
            assert answered
            for result in results:
                if isinstance(result, BaseException):
                    assert isinstance(result, OutboxUnavailable), result
                    assert "Redis replicas acknowledged" in str(result)
                    continue
                assert not result.duplicate and result.notification_id
                assert replica.hget(f"{prefix}:notif:{result.notification_id}", "payload") is not None
            # Ready means the replica has the probe's own write: its WAIT ran on the connection that wrote
            # it (on another one of the pool it would have counted nothing of it).
            for at in (4.0, 5.0, 6.0):
                reason = await outbox.check_writable(at)
                if reason is None:
                    assert replica.get(f"{prefix}:probe") == repr(at)
                else:  # a loaded machine: the replica missed WAIT's second
                    assert "Redis replicas acknowledged" in reason
            again = await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k0", 300, 3.0)
            assert again.duplicate  # the first, refused above, was stored
        finally:
            await outbox.close()


@pytest.mark.anyio
async def test_a_page_of_pending_jobs_is_read_in_one_command(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = RedisOutbox(redis_url, key_prefix=f"r{uuid.uuid4().hex[:8]}")
    try:
        for i in range(150):
            await outbox.accept("default", [NewJob("t", TARGET, f'{{"n": {i}}}')], None, 0, 1.0)
        first = await outbox.pending_jobs("t", 2.0, 1)
        await outbox.sending(first[0].id, 2.0)  # a started job: read first, with the line
        await outbox.progress(first[0].id, 1, 2.0)

        sent: list[object] = []
        send = AbstractConnection.send_packed_command

        async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
            sent.append(command)
            await send(self, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        page = await outbox.pending_jobs("t", 2.0, 100)
        assert len(sent) == 1  # one round trip with one command: not one HMGET per job and HGET per payload
        assert [job.payload for job in page] == [f'{{"n": {i}}}' for i in range(100)]
        assert page[0].sent_parts == 1  # the started job first
        nxt = await outbox.pending_jobs("t", 2.0, 100, page[-1].id)
        assert [job.payload for job in nxt] == [f'{{"n": {i}}}' for i in range(100, 150)]
        assert len(sent) == 2
    finally:
        await outbox.close()


def test_replies_are_parsed_by_hiredis() -> None:
    """pyproject.toml's redis[hiredis]: without it redis-py parses in Python, several times slower, on
    the event loop that answers webhooks."""
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


@pytest.mark.anyio
async def test_the_readiness_probe_waits_on_the_connection_that_wrote(redis_url: str) -> None:
    """WAIT counts the replicas that have its own connection's writes: the probe's WAIT must run where its
    test write ran, even while other calls keep the pool's connections changing hands."""
    prefix = f"w{uuid.uuid4().hex[:8]}"
    outbox = RedisOutbox(redis_url, key_prefix=prefix, min_replicas=1, timeout=3.0)
    seen: list[tuple[str, str]] = []  # (client address, command) as Redis's MONITOR reports them
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stop = False

    def monitor() -> None:
        with client.monitor() as m:  # type: ignore[no-untyped-call]
            for command in m.listen():
                seen.append((f"{command['client_address']}:{command['client_port']}", command["command"]))
                if stop:
                    return

    watcher = asyncio.get_running_loop().run_in_executor(None, monitor)
    try:
        await asyncio.sleep(0.2)  # MONITOR started
        for at in range(3):
            results = await asyncio.gather(
                *(outbox.stats(1.0) for _ in range(10)),
                outbox.check_writable(float(at)),
                *(outbox.stats(1.0) for _ in range(10)),
            )
            assert results[10] == "only 0 of 1 Redis replicas acknowledged"
    finally:
        stop = True
        client.ping()  # one more command for the monitor to see, so that it returns
        await watcher
        await outbox.close()
    waits = 0
    for index, (address, command) in enumerate(seen):
        if command.startswith("WAIT"):
            waits += 1
            probe = [a for a, c in seen[:index] if c.startswith("EVALSHA")][-1]  # the test write before it
            assert probe == address, seen
    assert waits == 3, seen


@pytest.mark.anyio
async def test_an_acceptance_arriving_as_both_batches_finish_is_sent() -> None:
    """Both batches answered in one turn of the loop, and a webhook accepted in that same turn (its body
    came with the replies): it starts a batch of its own rather than waiting for the next webhook. (The
    interleaving is made exact with a stand-in for Redis's round trip; no Redis is needed for it.)"""
    loop = asyncio.get_running_loop()
    batches = AcceptBatches(RedisCalls(None, 5.0, logging.getLogger("t")), None, "p", "w")
    answered = loop.create_future()  # both replies, arriving in one select()

    async def round_trip(batch: list[Any]) -> list[Any]:
        await answered
        return [1] * len(batch)

    batches._send = round_trip  # type: ignore[method-assign]
    first = batches.accept(["a"], "", True)
    await asyncio.sleep(0.01)
    second = batches.accept(["b"], "", True)
    await asyncio.sleep(0.01)  # two batches on their way
    later: list[asyncio.Future[Any]] = []
    answered.set_result(None)
    loop.call_soon(lambda: later.append(batches.accept(["c"], "", True)))  # queued behind both senders
    assert await first == 1 and await second == 1
    assert await asyncio.wait_for(later[0], 2.0) == 1


@pytest.mark.anyio
async def test_a_batch_connection_redis_closed_while_idle_is_opened_again(redis_url: str) -> None:
    """Redis closes idle clients (its `timeout`; or it restarted): the next batch opens its connection
    again instead of failing, also for an acceptance that may not be tried twice (no dedup window)."""
    outbox = RedisOutbox(redis_url, key_prefix=f"i{uuid.uuid4().hex[:8]}")
    job = [NewJob("t", TARGET, "{}")]
    try:
        assert (await outbox.accept("default", job, "k1", 0, 1.0)).notification_id
        redis.Redis.from_url(redis_url).config_set("timeout", 1)
        await asyncio.sleep(2.5)  # Redis has closed the batches' idle connection
        assert (await outbox.accept("default", job, "k2", 0, 2.0)).notification_id
    finally:
        redis.Redis.from_url(redis_url).config_set("timeout", 0)
        await outbox.close()
