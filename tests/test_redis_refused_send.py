"""Sends counted in the shared ledger as WeCom counts them, on a shared outbox (issue 22, item 3).

A send WeCom refuses for good does not count against the limits; a chart counts every replica's sends.

Replicas take a send's slot in the shared ledger before the message leaves (the write-ahead's claim).
When WeCom answers that it did not take the message, the slot is given back: a transient failure did
that already; a permanent one (every recipient invalid, errcode 81013) kept it, so the person, and the
app's daily quota, lost a send that never happened. Real parts: a real redis-server, the dispatcher on
the Redis outbox, the simulator in-process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import target_spec, validate_target
from alertmanager_wecom.delivery.charts import Charts, ChartSkipped
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.ingest.routing import target_key
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.outbox import JobState, NewJob
from alertmanager_wecom.outbox.redis import RedisOutbox
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app
from alertmanager_wecom.simulator.model import sandbox_settings
from tests.helpers import raw_config
from tests.redis_server import run_redis

pytestmark = pytest.mark.anyio
# A 1×1 PNG: the simulator takes any image upload.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


async def test_a_send_every_recipient_of_which_wecom_refuses_is_not_counted(tmp_path: Path) -> None:
    state = SimulatorState(sandbox_settings())
    raw = raw_config("http://wecom.test", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["delivery"].update(poll_interval="1s")
    config = parse_config(raw)
    with run_redis(tmp_path / "redis") as url:
        outbox = RedisOutbox(url, key_prefix="refused")
        transport = httpx.ASGITransport(app=create_simulator_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://wecom.test") as client:
            dispatcher = Dispatcher(config, outbox, client)
            await dispatcher.start()
            try:
                refused = target_spec(validate_target({"app": "ops", "to_user": ["nobody-here"]}))
                taken = target_spec(validate_target({"app": "ops", "to_user": ["zhangsan"]}))
                ids = {}
                for name, spec in (("refused", refused), ("taken", taken)):
                    payload = json.dumps(samples.node_down(1, cluster=name))
                    await outbox.accept(
                        "default", [NewJob(target_key("default", spec), spec, payload)], None, 0, 1.0
                    )
                    dispatcher.wake([target_key("default", spec)])
                    ids[name] = (await outbox.list_jobs(None, 1))[0].id
                for _ in range(400):
                    states = [(await outbox.get_job(i)) for i in ids.values()]
                    if all(j is not None and j.state is not JobState.PENDING for j in states):
                        break
                    await asyncio.sleep(0.05)
                sends = await outbox.recent_sends(0)
            finally:
                await dispatcher.stop()
                await outbox.close()
    dead = states[0]
    assert dead is not None and dead.state is JobState.DEAD and dead.reason == "recipients", dead
    assert states[1] is not None and states[1].state is JobState.DONE
    keys = sorted(key for key, _at in sends)
    # Only the message WeCom took counts (zhangsan's); the refused one's slot was given back.
    assert keys and all(key.endswith(":user:zhangsan") for key in keys), keys


async def test_a_chart_counts_every_replicas_sends_to_the_person(tmp_path: Path) -> None:
    """A chart is sent only with room under the limits counting what other replicas sent to the same person
    (the shared ledger), not this replica's own count alone; when there is room it is counted there too."""
    state = SimulatorState(sandbox_settings())
    raw = raw_config("http://wecom.test", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    config = parse_config(raw)
    spec = target_spec(validate_target({"app": "ops", "to_user": ["zhangsan"]}))
    png = base64.b64decode(PNG)
    with run_redis(tmp_path / "redis") as url:
        outbox, other = RedisOutbox(url, key_prefix="charts"), RedisOutbox(url, key_prefix="charts")
        transport = httpx.ASGITransport(app=create_simulator_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://wecom.test") as client:
            dispatcher = Dispatcher(config, outbox, client)  # not started: only its charts are used
            charts = dispatcher.services.charts
            assert isinstance(charts, Charts)
            route = dispatcher.routes.get(spec)
            payload = json.dumps(samples.node_down(1))
            await outbox.accept("default", [NewJob(target_key("default", spec), spec, payload)], None, 0, 1.0)
            job = (await outbox.list_jobs(None, 1))[0]
            await outbox.done(job.id, 2.0)
            try:
                await charts.send(job, route, png)  # room: sent, and counted where every replica sees it
                [image] = [e for e in state.entries("zhangsan") if e.get("msgtype") == "image"]
                counted = await other.recent_sends(0)
                assert len(counted) == len(route.rate_keys)
                # From when WeCom had it (the image uploaded first), not from the claim before that.
                assert all(at >= image["at"] for _key, at in counted), (counted, image["at"])
                # Another replica sent the person the rest of a minute's worth just now (its own targets):
                # this replica's own count has room, the person has none.
                now = time.time()
                for i in range(29):
                    await other.record_send(route.rate_keys, now - 1 + i / 100)
                assert dispatcher.limiter.wait_time(route.rate_keys) == 0
                with pytest.raises(ChartSkipped, match="other replicas"):
                    await charts.send(job, route, png)
                assert len([e for e in state.entries("zhangsan") if e.get("msgtype") == "image"]) == 1
            finally:
                await outbox.close()
                await other.close()
