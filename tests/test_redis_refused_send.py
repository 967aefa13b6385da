"""A send WeCom refuses for good does not count against the limits on a shared outbox (issue 22, item 3).

Replicas take a send's slot in the shared ledger before the message leaves (the write-ahead's claim).
When WeCom answers that it did not take the message, the slot is given back: a transient failure did
that already; a permanent one (every recipient invalid, errcode 81013) kept it, so the person, and the
app's daily quota, lost a send that never happened. Real parts: a real redis-server, the dispatcher on
the Redis outbox, the simulator in-process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import target_spec, validate_target
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
