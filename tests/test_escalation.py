"""Escalation on the fake clock: the relay's own intake (incident, steps in the outbox), the dispatcher and
the in-process simulator, with a real SQLite outbox and on-call store. Nothing waits for real time: a
step 30 minutes away is reached by moving the fake clock (tests/test_dispatcher.py's FakeTime)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.actions.acknowledge import Acknowledgements
from alertmanager_wecom.actions.store import CardRecord
from alertmanager_wecom.config import Config
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.ingest.payload import validate_webhook
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.oncall.ack_link import verify
from alertmanager_wecom.oncall.sqlite_store import SQLiteOncallStore
from alertmanager_wecom.oncall.store import group_id
from alertmanager_wecom.outbox import JobState, SQLiteOutbox
from alertmanager_wecom.rendering.card import CardState
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.web.incident_intake import after_accept, before_accept
from tests.helpers import raw_config
from tests.test_dispatcher import START, FakeTime, WeCom, simulator

pytestmark = pytest.mark.anyio

ACK_KEY = "k" * 32


def make_config(tmp_path: Path, **policy: Any) -> Config:
    raw = raw_config("http://sim", tmp_path, {"app": "ops", "to_user": ["oncall:sre"], "msgtype": "markdown"})
    raw["delivery"] = {"retry_initial": "1s", "retry_max": "5s", "poll_interval": "60s"}
    raw["server"] = {"external_url": "https://alerts.example.com"}
    raw["receivers"][0]["escalation"] = "sre"
    raw["oncall"] = {
        "ack_key": ACK_KEY,
        "schedules": {
            # START is 2027-01-15 08:00 UTC = 16:00 Shanghai; the day's shift (from 09:00) is lisi's.
            "sre": {"members": ["zhangsan", "lisi", "wangwu"], "start": "2027-01-14", "handoff": "09:00"}
        },
        "escalations": {
            "sre": {
                "steps": [
                    {"after": "10m", "targets": [{"app": "ops", "to_user": ["wangwu"], "msgtype": "text"}]},
                    {
                        "after": "30m",
                        "targets": [{"robot": "sre", "mention": ["oncall:sre"], "msgtype": "text"}],
                    },
                ],
                **policy,
            }
        },
    }
    return parse_config(raw)


@dataclass
class Relay:
    config: Config
    outbox: SQLiteOutbox
    store: SQLiteOncallStore
    dispatcher: Dispatcher
    metrics: Metrics
    time: FakeTime
    acks: Acknowledgements

    async def post(self, payload: dict[str, Any]) -> None:
        """A webhook, as web/webhook.py takes it: incident, steps, accept."""
        body = json.dumps(payload).encode()
        receiver = self.config.receivers[0]
        jobs = Router(self.config).route_whole("default", body, len(payload["alerts"]))
        assert jobs is not None
        jobs, intake = await before_accept(
            self.store, self.config, receiver, validate_webhook(body), body, jobs, self.time(), self.metrics
        )
        await self.outbox.accept("default", jobs, None, 0.0, self.time())
        await after_accept(self.store, intake, "default")
        self.dispatcher.wake(job.target_key for job in jobs)

    async def run_for(self, seconds: float) -> None:
        """Run the dispatcher until the fake clock has moved `seconds` on and everything due by then is
        done: the clock moves to each wake-up only while every task sleeps, and never past the end."""
        until = self.time() + seconds
        while True:
            await self.settle()
            wakeup = self.time.next_wakeup
            if wakeup is None or wakeup > until:
                self.time.now = max(self.time.now, until)
                await self.settle()
                return
            self.time.advance()

    async def settle(self) -> None:
        """Until the dispatcher's tasks all sleep on the fake clock and the timeline writes are done, for
        5 looks in a row (a task waiting for a thread, SQLite or a render, is not asleep)."""
        quiet = 0
        while quiet < 5:
            await asyncio.sleep(0.001)
            idle = self.time.sleeping >= 1 + self.dispatcher.busy and not self.dispatcher.oncall.busy
            quiet = quiet + 1 if idle else 0

    def count(self, metric: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(f"alertmanager_wecom_{metric}", labels) or 0.0


@asynccontextmanager
async def relay(
    tmp_path: Path, config: Config, state: SimulatorState, time: FakeTime
) -> AsyncIterator[Relay]:
    metrics = Metrics()
    outbox = SQLiteOutbox(config.storage.path, synchronous="normal")
    store = SQLiteOncallStore(tmp_path / "outbox-oncall.db")
    client = httpx.AsyncClient(transport=WeCom(state, time))
    dispatcher = Dispatcher(
        config,
        outbox,
        client,
        clock=time,
        sleep=time.sleep,
        metrics=metrics,
        jitter=lambda: 1.0,
        oncall=store,
    )
    acks = Acknowledgements(lambda: store, lambda: None, lambda: config, metrics, time)
    await dispatcher.start()
    try:
        yield Relay(config, outbox, store, dispatcher, metrics, time, acks)
    finally:
        await dispatcher.stop(grace=0)
        await client.aclose()
        await outbox.close()
        await store.close()


def texts(state: SimulatorState, recipient: str) -> list[str]:
    return [e["visible"] for e in state.entries(recipient)]


def robot_entries(state: SimulatorState) -> list[dict[str, Any]]:
    return [e for e in state.entries() if e["recipient"].startswith("robot:")]


def firing() -> dict[str, Any]:
    return samples.node_down(1)


def resolved() -> dict[str, Any]:
    payload = samples.node_down(1)
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2027-01-15T08:05:00Z"
    return payload


async def test_nobody_acknowledges_each_step_reaches_its_people_in_turn(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(tmp_path, make_config(tmp_path), state, time) as r:
        await r.post(firing())
        await r.run_for(60)
        # The person on call now (lisi's day), with a link that acknowledges the group.
        [first] = texts(state, "lisi")
        assert "⏫" not in first
        link = first.rsplit("(", 1)[1].rstrip(")")
        assert link.startswith("https://alerts.example.com/ack/")
        receiver, group = verify(ACK_KEY.encode(), link.rsplit("/", 1)[1], time())
        assert (receiver, group) == ("default", group_id(firing()["groupKey"]))
        assert texts(state, "wangwu") == []
        await r.run_for(9 * 60)  # 10 min after the first notification
        [step] = texts(state, "wangwu")
        assert "10分无人认领，已升级至第 2 级" in step and "认领: https://alerts.example.com/ack/" in step
        assert robot_entries(state) == []
        await r.run_for(20 * 60)
        [robot] = robot_entries(state)
        assert robot["mentioned"] == ["lisi"]  # oncall:sre, at send time
        assert "30分无人认领，已升级至第 3 级" in robot["visible"]
        assert r.count("escalations_total", policy="sre", step="2") == 1
        assert r.count("escalations_total", policy="sre", step="3") == 1
        [incident] = await r.store.incidents()
        kinds = [(e.kind, e.who) for e in incident.events]
        assert kinds == [
            ("opened", []),
            ("notified", ["lisi"]),
            ("escalated", ["wangwu"]),
            ("escalated", ["robot:sre", "@lisi"]),
        ]
        assert not await r.outbox.list_jobs(JobState.PENDING, 10)


@pytest.mark.parametrize("how", ["acknowledged", "resolved"])
async def test_an_acknowledgement_or_the_resolution_before_a_step_means_it_never_fires(
    tmp_path: Path, how: str
) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(tmp_path, make_config(tmp_path), state, time) as r:
        await r.post(firing())
        await r.run_for(5 * 60)
        if how == "acknowledged":
            result = await r.acks.acknowledge("default", group_id(firing()["groupKey"]), "lisi", "link")
            assert result.outcome == "acknowledged"
        else:
            await r.post(resolved())
        await r.run_for(60 * 60)
        assert texts(state, "wangwu") == [] and robot_entries(state) == []
        assert r.count("escalations_stopped_total", policy="sre", why=how) == 2
        assert r.count("escalations_total", policy="sre", step="2") == 0
        assert not await r.outbox.list_jobs(JobState.PENDING, 10)
        [incident] = await r.store.incidents()
        assert incident.stop_reason() is not None


async def test_an_acknowledgement_between_steps_stops_the_later_ones(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(tmp_path, make_config(tmp_path, repeat=1), state, time) as r:
        await r.post(firing())
        await r.run_for(15 * 60)
        assert len(texts(state, "wangwu")) == 1
        await r.acks.acknowledge("default", group_id(firing()["groupKey"]), "wangwu", "console")
        await r.run_for(3 * 3600)
        assert len(texts(state, "wangwu")) == 1 and robot_entries(state) == []
        # The step at 30 min, and the repeat round's two steps (at 40 and 60 min), never fired.
        assert r.count("escalations_stopped_total", policy="sre", why="acknowledged") == 3
        [incident] = await r.store.incidents()
        assert (incident.acknowledged_by, incident.acknowledged_how) == ("wangwu", "console")
        assert r.count("time_to_acknowledge_seconds_count", receiver="default") == 1


async def test_repeats_of_the_group_store_the_steps_once(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    async with relay(tmp_path, make_config(tmp_path), state, time) as r:
        for _ in range(3):  # Alertmanager's group_interval repeats, while nobody acknowledges
            await r.post(firing())
            await r.run_for(2 * 60)
        await r.run_for(40 * 60)
        assert len(texts(state, "wangwu")) == 1 and len(robot_entries(state)) == 1
        assert len(texts(state, "lisi")) == 3


async def test_a_step_stored_twice_fires_once(tmp_path: Path) -> None:
    # The steps' marking failed after the accept (a crash): the next notification stores them again.
    time = FakeTime()
    state = simulator(time)
    config = make_config(tmp_path)
    async with relay(tmp_path, config, state, time) as r:
        await r.post(firing())
        [incident] = await r.store.incidents()
        await r.store._transaction(lambda db: db.execute("UPDATE incidents SET scheduled = 0"))
        await r.post(firing())
        await r.run_for(40 * 60)
        assert len(texts(state, "wangwu")) == 1 and len(robot_entries(state)) == 1
        assert r.count("escalations_stopped_total", policy="sre", why="taken") == 2
        assert incident.started_at == START


async def test_a_step_waiting_survives_a_restart_and_fires_once(tmp_path: Path) -> None:
    time = FakeTime()
    state = simulator(time)
    config = make_config(tmp_path)
    async with relay(tmp_path, config, state, time) as r:
        await r.post(firing())
        await r.run_for(5 * 60)
    async with relay(tmp_path, config, state, time) as again:
        await again.run_for(40 * 60)
        assert len(texts(state, "wangwu")) == 1 and len(robot_entries(state)) == 1


async def test_a_target_names_the_policy_and_a_step_posts_to_the_users_own_gateway(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.servers import serve_in_thread

    posted: list[dict[str, Any]] = []

    async def page(request: Request) -> JSONResponse:
        posted.append(
            {"body": json.loads(await request.body()), "auth": request.headers.get("authorization")}
        )
        return JSONResponse({"ok": True})

    gateway = Starlette(routes=[Route("/page", page, methods=["POST"])])
    time = FakeTime()
    state = simulator(time)
    with serve_in_thread(gateway) as url:
        raw = raw_config("http://sim", tmp_path, {"app": "ops", "to_user": ["lisi"], "escalation": "phone"})
        raw["delivery"] = {"poll_interval": "60s"}
        raw["webhooks"] = {"gateway": {"url": f"{url}/page", "headers": {"Authorization": "Bearer s3cret"}}}
        raw["oncall"] = {
            "escalations": {"phone": {"steps": [{"after": "5m", "targets": [{"webhook": "gateway"}]}]}}
        }
        config = parse_config(raw)
        assert config.receivers[0].escalation is None  # the target names it
        async with relay(tmp_path, config, state, time) as r:
            await r.post(firing())
            await r.run_for(4 * 60)
            assert posted == [] and len(texts(state, "lisi")) == 1
            await r.run_for(2 * 60)
            [call] = posted
            assert call["auth"] == "Bearer s3cret"
            assert call["body"]["escalation"] == {
                "policy": "phone",
                "level": 2,
                "round": 0,
                "after_seconds": 300,
            }
            assert call["body"]["groupKey"] == firing()["groupKey"]
            assert len(call["body"]["alerts"]) == 1
            [incident] = await r.store.incidents()
            assert incident.policy == "phone"
            assert [(e.kind, e.who) for e in incident.events][-1] == ("escalated", ["webhook:gateway"])


async def test_a_storms_digest_is_not_parsed_again_for_the_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups that reach the person on call one by one are marked "notified"; so is each group a digest
    merged (a storm's groups: the digest remembers them), and its payload, a storm's worth of alerts, is
    not parsed again for that: delivery had it at hand."""
    from alertmanager_wecom.delivery import oncall as oncall_module
    from alertmanager_wecom.delivery.render import parse

    parsed: list[int] = []  # digest_of of each job parsed for the timeline

    def counted(job: Any) -> Any:
        parsed.append(job.digest_of)
        return parse(job)

    monkeypatch.setattr(oncall_module, "parse", counted)
    time = FakeTime()
    state = simulator(time)
    async with relay(tmp_path, make_config(tmp_path), state, time) as r:
        for i in range(48):  # 3 groups alone, then more than a person may get in a minute: a digest
            payload = samples.node_down(1, cluster=f"c{i}")
            payload["groupKey"] = f'{{}}:{{cluster="c{i}"}}'
            await r.post(payload)
            if i == 2:
                await r.run_for(30)
        await r.run_for(120)
        digests = [j for j in await r.outbox.list_jobs(None, 300) if j.digest_of]
        notified = [e for i in await r.store.incidents() for e in i.events if e.kind == "notified"]
        # Had the digest been a card, its 认领 acknowledges every group it merged (actions/groups.py).
        [digest] = digests
        card = CardRecord(
            "t1",
            "ops",
            "default",
            digest.target_spec,
            "digest",
            digest.id,
            digest.payload,
            {},
            CardState(),
            False,
            time(),
        )
        await r.acks.from_card(card, "zhangsan")
        by_card = [i for i in await r.store.incidents() if i.acknowledged_how == "card"]
    assert len(by_card) == 45 and all(i.acknowledged_by == "zhangsan" for i in by_card)
    assert digests and all(j.state is JobState.DONE for j in digests)
    # Its link names the digest (kept in the outbox), not 45 groups: one link acknowledges them all.
    [text] = [t for t in texts(state, "lisi") if "认领全部" in t]
    assert "[认领全部 45 组](https://alerts.example.com/ack/" in text
    token = text.split("[认领全部 45 组](", 1)[1].split(")", 1)[0].rsplit("/", 1)[1]
    assert verify(ACK_KEY.encode(), token, time()) == ("default", f"j{digests[0].id}")
    assert [e.how for e in notified].count("app:ops") == 3  # the groups sent alone
    assert [e.how for e in notified].count("app:ops (digest)") == 45  # every group of the digest
    assert all(e.who == ["lisi"] for e in notified)
    assert parsed == [0, 0, 0]  # parsed again: the groups sent alone, never the digest
