"""The Redis outbox when Redis misbehaves (outbox/redis/calls.py, purge.py), against a real redis-server:
a connection Redis closed is tried again once, only where that is safe; a purge is many short scripts;
a frozen Redis answers webhooks 503 within `storage.timeout` and loses nothing; out of memory, 503 with
the reason, and every notification accepted before it is delivered once memory is raised."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.outbox import JobState, NewJob, OutboxUnavailable
from alertmanager_wecom.outbox.redis import RedisOutbox
from alertmanager_wecom.outbox.redis.purge import BATCH
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import sandbox_settings
from alertmanager_wecom.simulator.server import create_simulator_app
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config, wait_until
from tests.redis_server import run_redis
from tests.servers import serve_in_thread

TARGET = '{"app": "ops", "to_user": ["zhangsan"]}'


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with run_redis(tmp_path / "redis") as url:
        yield url


def kill_clients(url: str) -> int:
    """Close every other client's connection, as a Redis restart or a reset does to idle pooled ones."""
    return int(redis.Redis.from_url(url).client_kill_filter(_type="normal", skipme=True))


def script_calls(url: str) -> int:
    """Scripts Redis ran (not counting a first EVALSHA refused as NOSCRIPT: redis-py loads it then)."""
    stats = redis.Redis.from_url(url).info("commandstats")
    ran = [stats.get(name, {}) for name in ("cmdstat_evalsha", "cmdstat_eval")]
    return sum(int(each.get("calls", 0)) - int(each.get("failed_calls", 0)) for each in ran)


@pytest.mark.anyio
async def test_a_broken_connection_is_tried_again_once_where_that_is_safe(redis_url: str) -> None:
    outbox = RedisOutbox(redis_url, key_prefix=f"r{uuid.uuid4().hex[:8]}")
    try:
        first = await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k1", 300, 1.0)
        assert first.notification_id is not None
        # Each call below meets a connection Redis has closed, and succeeds: no 503 for a restart.
        assert kill_clients(redis_url) >= 1
        assert await outbox.pending_targets() == ["t"]
        assert kill_clients(redis_url) >= 1
        second = await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k2", 300, 2.0)
        assert not second.duplicate and second.notification_id is not None
        assert kill_clients(redis_url) >= 1
        (job,) = await outbox.pending_jobs("t", 3.0, 1)
        assert kill_clients(redis_url) >= 1
        await outbox.done(job.id, 3.0)
        assert (await outbox.stats(3.0)).pending == 1
        # A closed connection found before anything is sent is opened again, whatever the call.
        assert kill_clients(redis_url) >= 1
        third = await outbox.accept("default", [NewJob("t", TARGET, "{}")], None, 300, 4.0)
        assert third.notification_id is not None
        assert (await outbox.stats(4.0)).pending == 2
        # Not tried again: an acceptance without a dedup key whose connection breaks once Redis has it
        # (a second run could store it twice). Redis holds writes meanwhile (CLIENT PAUSE WRITE).
        admin = redis.Redis.from_url(redis_url)
        admin.client_pause(5000, all=False)
        try:
            sent = asyncio.create_task(outbox.accept("default", [NewJob("t", TARGET, "{}")], None, 300, 5.0))
            await asyncio.sleep(0.3)  # sent, and held by the pause
            assert not sent.done() and kill_clients(redis_url) >= 1
            with pytest.raises(OutboxUnavailable, match="ConnectionError"):
                await sent
        finally:
            admin.client_unpause()
        assert (await outbox.stats(5.0)).pending == 2
    finally:
        await outbox.close()


@pytest.mark.anyio
async def test_a_restarted_redis_is_used_again_at_the_first_call(tmp_path: Path) -> None:
    with run_redis(tmp_path / "redis") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        outbox = RedisOutbox(url, key_prefix="restart")
        await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k", 300, 1.0)
    try:
        with run_redis(tmp_path / "redis", port):  # the same port and append-only file
            assert (await outbox.stats(2.0)).pending == 1
            assert (await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k", 300, 2.0)).duplicate
    finally:
        await outbox.close()


@pytest.mark.anyio
async def test_purge_runs_in_batches_of_1000(redis_url: str) -> None:
    outbox = RedisOutbox(redis_url, key_prefix=f"p{uuid.uuid4().hex[:8]}")
    try:
        payload = "{}"
        dead = [NewJob(f"t{i}", TARGET, payload, dead_reason="no recipient") for i in range(2 * BATCH + 500)]
        await outbox.accept("default", dead, None, 300, 1.0)
        before = script_calls(redis_url)
        assert await outbox.purge([JobState.DEAD], 2.0) == len(dead)
        assert script_calls(redis_url) - before == 3  # 1000 + 1000 + 500: Redis was never held longer
        assert await outbox.list_jobs(None, 10) == []

        await outbox.accept("default", dead, None, 300, 1.0)
        ids = [job.id for job in await outbox.list_jobs(JobState.DEAD, len(dead))]
        before = script_calls(redis_url)
        assert await outbox.purge([JobState.DEAD], 2.0, job_ids=ids) == len(dead)
        assert script_calls(redis_url) - before == 3
        assert (await outbox.stats(2.0)).dead == 0
    finally:
        await outbox.close()


@pytest.mark.anyio
async def test_acceptances_in_flight_together_share_a_pipeline(redis_url: str) -> None:
    outbox = RedisOutbox(redis_url, key_prefix=f"b{uuid.uuid4().hex[:8]}")
    sent: list[int] = []
    pipeline = outbox._accepts._pipeline

    async def counted(batch: list[Any]) -> list[Any]:
        sent.append(len(batch))
        return await pipeline(batch)

    outbox._accepts._pipeline = counted  # type: ignore[method-assign]
    try:
        redis.Redis.from_url(redis_url).script_flush()  # as after a restart: the first batch meets NOSCRIPT
        results = await asyncio.gather(
            *(outbox.accept("default", [NewJob(f"t{i}", TARGET, "{}")], f"k{i}", 300, 1.0) for i in range(40))
        )
        ids = [r.notification_id for r in results]
        assert None not in ids and len(set(ids)) == 40
        assert (await outbox.stats(1.0)).pending == 40
        # Sent as they came: the first alone, the rest in batches while one is on its way (a NOSCRIPT
        # batch is sent twice); far fewer round trips, and fsyncs, than acceptances.
        assert sum(sent) >= 40 and len(sent) < 20, sent
        duplicate = await outbox.accept("default", [NewJob("t0", TARGET, "{}")], "k0", 300, 2.0)
        assert duplicate.duplicate
    finally:
        await outbox.close()


def fast_simulator() -> SimulatorState:
    """The sandbox, with room for every message of the test (no digests: each notification its own)."""
    return SimulatorState(
        sandbox_settings().model_copy(update={"member_per_minute": 100000, "member_per_hour": 100000})
    )


def redis_relay_config(simulator: str, tmp_path: Path, url: str, prefix: str) -> dict[str, Any]:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["storage"] = {"backend": "redis", "url": url, "key_prefix": prefix, "timeout": "1s"}
    raw["delivery"].update(member_per_minute=100000, member_per_hour=100000)
    return raw


def texts(state: SimulatorState) -> str:
    return "\n".join(str(entry) for entry in state.entries("zhangsan"))


def test_a_frozen_redis_answers_webhooks_503_within_the_timeout_and_loses_nothing(tmp_path: Path) -> None:
    state = fast_simulator()
    with (
        run_redis(tmp_path / "redis") as url,
        serve_in_thread(create_simulator_app(state)) as simulator,
    ):
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        app = create_app(parse_config(redis_relay_config(simulator, tmp_path, url, "frozen")))
        with serve_in_thread(app) as base, httpx.Client(timeout=30) as client:
            assert (
                client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="before")).status_code
                == 200
            )
            wait_until(lambda: "before" in texts(state), 20, "delivery before the freeze")
            os.kill(pid, signal.SIGSTOP)
            try:
                for i in range(3):
                    started = time.monotonic()
                    answer = client.post(
                        f"{base}/alerts/default", json=samples.node_down(1, cluster=f"frozen{i}")
                    )
                    took = time.monotonic() - started
                    # storage.timeout is 1s: the answer comes after it, not after Redis's socket timeouts.
                    assert answer.status_code == 503 and took < 1.8, (took, answer.text)
                    assert "did not answer within storage.timeout (1s)" in answer.text
                ready = client.get(f"{base}/readyz")
                assert ready.status_code == 503 and "Redis did not answer" in ready.text
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_until(lambda: client.get(f"{base}/readyz").status_code == 200, 20, "ready again")
            # Alertmanager sends the refused ones again. What a frozen Redis ran after it woke (the
            # scripts waiting in its sockets) is answered as a duplicate: stored and delivered once.
            for i in range(3):
                again = client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster=f"frozen{i}"))
                assert again.status_code == 200, again.text
            wait_until(lambda: all(f"frozen{i}" in texts(state) for i in range(3)), 20, "the refused ones")
            for i in range(3):
                assert texts(state).count(f"frozen{i}") == texts(state).count("before"), texts(state)


def test_out_of_memory_is_503_with_the_reason_and_loses_nothing_accepted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    state = fast_simulator()
    with (
        run_redis(tmp_path / "redis") as url,
        serve_in_thread(create_simulator_app(state)) as simulator,
    ):
        admin = redis.Redis.from_url(url)
        app = create_app(parse_config(redis_relay_config(simulator, tmp_path, url, "oom")))
        with serve_in_thread(app) as base, httpx.Client(timeout=30) as client:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 1_000_000)
            accepted: list[str] = []
            refused = None
            for i in range(5000):
                answer = client.post(f"{base}/alerts/default", json=samples.node_down(3, cluster=f"oom{i}x"))
                if answer.status_code != 200:
                    refused = answer
                    break
                accepted.append(f"oom{i}x")
            assert refused is not None and refused.status_code == 503, "never out of memory"
            assert "Redis is out of memory" in refused.text and len(accepted) > 3, refused.text
            # Deep in it (at the edge, what the dispatcher frees lets a write pass now and then):
            admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) // 2)
            ready = client.get(f"{base}/readyz")
            assert ready.status_code == 503 and "out of memory" in ready.text
            assert client.post(f"{base}/alerts/default", json=samples.node_down(3)).status_code == 503
            admin.config_set("maxmemory", 0)
            wait_until(lambda: client.get(f"{base}/readyz").status_code == 200, 20, "ready again")
            wait_until(lambda: all(name in texts(state) for name in accepted), 60, "every accepted one")
    # Said when it began, with the reason, and when it ended; reads, which go on succeeding, end
    # nothing. (At the very edge of maxmemory a write can pass between two refusals, as the dispatcher
    # frees memory: then the log says so, a few lines, not one per call.)
    records = [r for r in caplog.records if r.name.startswith("alertmanager_wecom.outbox")]
    lines = [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info], lines
    assert lines[0].startswith("Redis unavailable: Redis is out of memory"), lines
    assert lines[-1].startswith("Redis available again"), lines
    assert len(lines) <= 6, lines
