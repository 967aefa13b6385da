"""The dispatcher against the in-process simulator, on a fake clock: pacing, backoff, dead letters,
digests and the write-ahead record, without waiting.

The relay and the simulator share one `FakeTime`. Its `sleep` does not advance the clock by itself:
`run_until` moves it to the earliest wake-up only when every task of the dispatcher (its loop and
one task per busy target) is asleep, so virtual time passes exactly as the code asks for it, whatever
the real SQLite threads and the machine's load take.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import Config, target_spec, validate_target
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.delivery.retry import backoff
from alertmanager_wecom.ingest.routing import Router, target_key
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import Job, JobState, NewJob, SQLiteOutbox
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from tests.helpers import raw_config

pytestmark = pytest.mark.anyio

START = 1_800_000_000.0


class FakeTime:
    """A clock, and a sleep that waits until `advance` moves the clock past its wake-up."""

    def __init__(self) -> None:
        self.now = START
        self._sleepers: dict[int, tuple[float, asyncio.Future[None]]] = {}
        self._ids = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        ident = next(self._ids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers[ident] = (self.now + max(0.0, seconds), future)
        try:
            await future
        finally:
            self._sleepers.pop(ident, None)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    @property
    def next_wakeup(self) -> float | None:
        return min((at for at, _ in self._sleepers.values()), default=None)

    def advance(self) -> None:
        """To the earliest wake-up; wake every sleeper due by then."""
        self.now = max(self.now, min(at for at, _ in self._sleepers.values()))
        for ident, (at, future) in list(self._sleepers.items()):
            if at <= self.now:
                del self._sleepers[ident]
                future.set_result(None)


class WeCom(httpx.AsyncBaseTransport):
    """The simulator in-process, behind a script for message/send: answer "system busy" to the next
    `busy` calls; on call number `hang_at`, let the message reach WeCom and never answer (the relay
    dies before it hears)."""

    def __init__(self, state: SimulatorState, time: FakeTime) -> None:
        self.inner = httpx.ASGITransport(app=create_simulator_app(state))
        self.time = time
        self.busy = 0
        self.hang_at: int | None = None
        self.hung = asyncio.Event()
        self.sends: list[float] = []  # the (fake) time of each message/send call

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/message/send"):
            self.sends.append(self.time())
            if self.busy > 0:
                self.busy -= 1
                return httpx.Response(200, json={"errcode": -1, "errmsg": "system busy"})
            if len(self.sends) == self.hang_at:
                await self.inner.handle_async_request(request)
                self.hung.set()
                await asyncio.Event().wait()
        return await self.inner.handle_async_request(request)


@dataclass
class Relay:
    config: Config
    outbox: SQLiteOutbox
    dispatcher: Dispatcher
    metrics: Metrics
    time: FakeTime
    wecom: WeCom

    async def queue(self, payload: dict[str, Any]) -> None:
        """A notification for the receiver, routed and committed as the webhook does."""
        body = json.dumps(payload)
        jobs = Router(self.config).route_whole("default", body, len(payload["alerts"]))
        assert jobs
        await self.queue_jobs(jobs)

    async def queue_jobs(self, jobs: list[NewJob]) -> None:
        await self.outbox.accept("default", jobs, None, 0.0, self.time())
        self.dispatcher.wake(job.target_key for job in jobs)

    async def run_until(self, done: Callable[[], Awaitable[bool]], within: float = 3600.0) -> None:
        """Run the dispatcher until `done`, moving the fake clock whenever all its tasks sleep."""
        deadline = self.time() + within
        while not await done():
            await asyncio.sleep(0.001)  # real: the outbox's threads answer meanwhile
            if self.time.sleeping >= 1 + self.dispatcher.busy:
                self.time.advance()
            assert self.time() < deadline, "the dispatcher did not get there in time (virtual)"

    async def run_until_delivered(self, within: float = 3600.0) -> None:
        async def nothing_pending() -> bool:
            return not await self.outbox.list_jobs(JobState.PENDING, 1)

        await self.run_until(nothing_pending, within)

    async def jobs(self, state: JobState | None = None) -> list[Job]:
        return sorted(await self.outbox.list_jobs(state, 1000), key=lambda job: job.id)

    def count(self, metric: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(f"alertmanager_wecom_{metric}_total", labels)
        return value or 0.0


def make_config(tmp_path: Path, *targets: dict[str, Any], **delivery: object) -> Config:
    raw = raw_config("http://sim", tmp_path, *(targets or ({"app": "ops", "to_user": ["zhangsan"]},)))
    raw["delivery"] = {"retry_initial": "1s", "retry_max": "5s", "poll_interval": "1s", **delivery}
    raw["render"] = {"max_messages": 50}
    return parse_config(raw)


@asynccontextmanager
async def relay(
    config: Config, state: SimulatorState, time: FakeTime, wecom: WeCom | None = None
) -> AsyncIterator[Relay]:
    wecom = wecom or WeCom(state, time)
    metrics = Metrics()
    outbox = SQLiteOutbox(config.storage.path, synchronous="normal")
    client = httpx.AsyncClient(transport=wecom)
    dispatcher = Dispatcher(
        config, outbox, client, clock=time, sleep=time.sleep, metrics=metrics, jitter=lambda: 1.0
    )
    try:
        yield Relay(config, outbox, dispatcher, metrics, time, wecom)
    finally:
        await dispatcher.stop(grace=0)
        await client.aclose()
        await outbox.close()


def simulator(time: FakeTime, member_per_minute: int = 30) -> SimulatorState:
    settings = sandbox_settings()
    settings.member_per_minute = member_per_minute
    return SimulatorState(settings, clock=time)


async def test_a_burst_to_one_member_is_spread_to_the_per_minute_limit(tmp_path: Path) -> None:
    time = FakeTime()
    # WeCom (the simulator) drops what is over 5/min for a member; the relay keeps 10 % below: 4/min.
    state = simulator(time, member_per_minute=5)
    config = make_config(tmp_path, member_per_minute=5)
    async with relay(config, state, time) as r:
        await r.queue(samples.node_down(1000))  # more messages than a minute carries, even as a digest
        await r.dispatcher.start()
        await r.run_until_delivered()
        job = (await r.jobs())[-1]
    entries = state.entries("zhangsan")
    sent = len(entries)
    assert sent >= 8
    assert job.state == JobState.DONE and job.sent_parts == sent
    assert [e["dropped"] for e in entries] == [None] * sent
    times = [e["at"] for e in entries]
    # Never more than 4 in a minute, and so the burst takes as many minutes as it needs, no more.
    assert all(later - first >= 60 for first, later in zip(times, times[4:], strict=False))
    assert 60 * ((sent - 1) // 4) <= times[-1] - times[0] < 60 * ((sent - 1) // 4 + 1)
    assert r.count("rate_limit_waits", channel="app", target="app:ops") >= 1


async def test_transient_errors_back_off_doubling_up_to_retry_max_then_deliver(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    wecom = WeCom(state, time)
    wecom.busy = 6
    async with relay(make_config(tmp_path), state, time, wecom) as r:
        await r.queue(samples.node_down(2))
        await r.dispatcher.start()
        await r.run_until_delivered()
        [job] = await r.jobs()
    gaps = [later - first for first, later in itertools.pairwise(wecom.sends)]
    # retry_initial 1 s, doubling, at most retry_max 5 s (jitter fixed at 1.0).
    assert gaps == pytest.approx([1, 2, 4, 5, 5, 5], abs=0.05)
    assert job.state == JobState.DONE and job.attempts == 6
    assert len(state.entries("zhangsan")) == 1
    assert r.count("messages_failed", receiver="default", channel="app", target="app:ops", reason="busy") == 6


def test_backoff_doubles_from_initial_up_to_the_maximum() -> None:
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_transient_errors_past_max_age_become_a_dead_letter(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    wecom = WeCom(state, time)
    wecom.busy = 1000
    async with relay(make_config(tmp_path, max_age="20s"), state, time, wecom) as r:
        await r.queue(samples.node_down(1))
        await r.dispatcher.start()
        await r.run_until_delivered()
        [job] = await r.jobs()
    assert job.state == JobState.DEAD and job.reason == "busy"
    assert job.last_error is not None and job.last_error.startswith("gave up after 20s of transient failures")
    assert 20 < wecom.sends[-1] - wecom.sends[0] <= 25  # backed off to the end: no retry storm
    assert state.entries() == []


async def test_permanent_errors_are_dead_letters_with_their_reason_and_the_next_job_goes_on(
    tmp_path: Path,
) -> None:
    time = FakeTime()
    state = simulator(time)
    config = make_config(tmp_path, {"app": "ops", "to_user": ["ghost"], "continue": True}, {"robot": "sre"})
    async with relay(config, state, time) as r:
        await r.queue(samples.node_down(1))
        await r.queue(samples.node_down(1, cluster="prod-sh"))
        # A job queued for a robot the config no longer names.
        gone = target_spec(validate_target({"robot": "retired"}))
        await r.queue_jobs([NewJob(target_key("default", gone), gone, json.dumps(samples.node_down(1)))])
        await r.dispatcher.start()
        await r.run_until_delivered()
        jobs = await r.jobs()
    dead = {job.id: job for job in jobs if job.state == JobState.DEAD}
    assert [job.reason for job in dead.values()] == ["recipients", "recipients", "config"]
    ghost = next(iter(dead.values()))
    assert ghost.last_error is not None and "81013" in ghost.last_error
    gone_job = dead[max(dead)]
    assert gone_job.last_error is not None and gone_job.last_error.startswith("cannot deliver: ")
    assert "robot 'retired' is not in the config" in gone_job.last_error
    assert len(state.entries("robot:sre")) == 2  # the robot's jobs went on
    assert r.count("dead_letters", receiver="default", reason="recipients") == 2
    assert r.count("dead_letters", receiver="default", reason="config") == 1


async def test_a_backlog_is_coalesced_into_a_digest_that_shows_every_alert(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(make_config(tmp_path), state, time) as r:
        for i in range(30):
            await r.queue(samples.node_down(1, cluster=f"c{i:02d}"))
        await r.dispatcher.start()
        await r.run_until_delivered()
        jobs = await r.jobs()
    merged = [job for job in jobs if job.state == JobState.MERGED]
    [digest] = [job for job in jobs if job.digest_of]
    assert len(merged) == 30 and {job.merged_into for job in merged} == {digest.id}
    assert digest.state == JobState.DONE and digest.digest_of == 30
    entries = state.entries("zhangsan")
    assert 1 <= len(entries) <= 3
    shown = "".join(e["visible"] for e in entries)
    assert all(f"c{i:02d}" in shown for i in range(30))
    assert r.count("digests", receiver="default") == 1


async def test_a_crash_after_the_write_ahead_resends_the_same_bytes(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    config = make_config(tmp_path)
    wecom = WeCom(state, time)
    wecom.hang_at = 1
    async with relay(config, state, time, wecom) as r:
        await r.queue(samples.node_down(2))
        await r.dispatcher.start()
        await r.run_until(lambda: _is_set(wecom.hung))
        # The process dies here: WeCom has the message, the outbox has not heard.
    assert len(state.entries("zhangsan")) == 1
    async with relay(config, state, time) as r:
        [first] = await r.jobs(JobState.PENDING)
        assert first.inflight and first.sent_parts == 0
        # A backlog queued meanwhile: it is coalesced, but the job in flight is not merged into it.
        for i in range(30):
            await r.queue(samples.node_down(1, cluster=f"c{i:02d}"))
        await r.dispatcher.start()
        await r.run_until_delivered()
        jobs = {job.id: job for job in await r.jobs()}
    assert jobs[first.id].state == JobState.DONE
    # The resend was byte-identical: WeCom's duplicate check dropped it, so the person saw it once.
    assert state.stats()["suppressed_duplicates"] == 1
    entries = state.entries("zhangsan")
    assert sum("prod-bj" in e["visible"] for e in entries) == 1
    assert any(job.digest_of == 30 for job in jobs.values())


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def test_notifications_arriving_during_a_backoff_wait_for_it_and_do_not_overtake(
    tmp_path: Path,
) -> None:
    time = FakeTime()
    state = simulator(time)
    wecom = WeCom(state, time)
    wecom.busy = 1
    async with relay(make_config(tmp_path), state, time, wecom) as r:
        await r.queue(samples.node_down(1, cluster="first"))
        await r.dispatcher.start()

        async def backing_off() -> bool:
            return (await r.jobs())[0].attempts == 1

        await r.run_until(backing_off)
        await r.queue(samples.node_down(1, cluster="second"))
        await r.run_until_delivered()
    assert wecom.sends[1:] and all(at >= wecom.sends[0] + 1 for at in wecom.sends[1:])
    visible = [e["visible"] for e in state.entries("zhangsan")]
    assert len(visible) == 2 and "first" in visible[0] and "second" in visible[1]


async def test_the_stages_alone_render_write_ahead_send_record(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(make_config(tmp_path), state, time) as r:
        await r.queue(samples.node_down(2))
        [job] = await r.jobs()
        route = r.dispatcher.routes.get(job.target_spec)
        stages = r.dispatcher.deliver
        [message] = await stages.render(job, route) or []
        assert await stages.wait_for_room(route)
        at = await stages.write_ahead(job, route)
        [written] = await r.jobs()
        assert written.inflight and written.sent_parts == 0 and at == time()
        assert at is not None
        result = await stages.send(route, message)
        assert [e["visible"] for e in state.entries("zhangsan")] == [message.content]
        await stages.record_sent(job, route, 0, at, result)
        [recorded] = await r.jobs()
        assert not recorded.inflight and recorded.sent_parts == 1
        assert await r.outbox.recent_sends(0) == [(key, at) for key in route.rate_keys]
        await stages.record_done(job, route, 1)
        [done] = await r.jobs()
    assert done.state == JobState.DONE
    assert r.count("messages_sent", receiver="default", channel="app", target="app:ops") == 1


class SharedOutbox(SQLiteOutbox):
    """An outbox as replicas share it (the dispatcher keeps its leases), which records each lease taken
    and lets go after `kept` extensions."""

    shared = True

    def __init__(self, path: str, time: FakeTime, kept: int) -> None:
        super().__init__(path, synchronous="normal")
        self.time = time
        self.kept = kept
        self.leases: list[float] = []

    async def lease(self, target_key: str, owner: str, seconds: float) -> bool:
        self.leases.append(self.time())
        return len(self.leases) <= self.kept


async def asleep(time: FakeTime) -> None:
    """Until some task sleeps on the fake clock (a real sleep never does: five real seconds at most)."""
    for _ in range(5000):
        if time.sleeping:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("nothing sleeps on the fake clock")


async def test_a_held_lease_is_extended_on_the_injected_clock(tmp_path: Path) -> None:
    time = FakeTime()
    config = make_config(tmp_path)
    outbox = SharedOutbox(config.storage.path, time, kept=2)
    async with httpx.AsyncClient(transport=WeCom(simulator(time), time)) as client:
        dispatcher = Dispatcher(config, outbox, client, clock=time, sleep=time.sleep, jitter=lambda: 1.0)
        keeper = asyncio.create_task(dispatcher._keep("app:ops→zhangsan"))
        try:
            for _ in range(3):  # each extension waits a third of the lease, on the fake clock
                await asleep(time)
                time.advance()
            await asyncio.wait_for(keeper, 5)  # the third extension is refused: the keeper stops
        finally:
            keeper.cancel()
            await outbox.close()
    lease = config.storage.lease
    assert outbox.leases == [START + lease / 3, START + 2 * lease / 3, START + lease]
