"""A fan-out: one notification each to many people, WeCom answering each call after a delay (real time,
the simulator in-process behind a slow transport, a real SQLite outbox). The targets are sent to side by
side, never more than `delivery.workers` at once, each target's notifications in order; and the rounds
look up each target about once, not once per finished task (that was O(targets²))."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import target_spec, validate_target
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.ingest.routing import target_key
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.outbox import NewJob, SQLiteOutbox
from alertmanager_wecom.simulator import SimulatorSettings, SimulatorState, create_simulator_app
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.helpers import raw_config

pytestmark = pytest.mark.anyio
PEOPLE = [f"u{i:03d}" for i in range(120)]
WORKERS = 16


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


class SlowWeCom(httpx.AsyncBaseTransport):
    """The simulator, answering message/send after `delay`; counts the sends in flight at once."""

    def __init__(self, state: SimulatorState, delay: float) -> None:
        self.inner = httpx.ASGITransport(app=create_simulator_app(state))
        self.delay = delay
        self.in_flight = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "message/send" not in request.url.path:
            return await self.inner.handle_async_request(request)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


async def test_a_fan_out_is_sent_side_by_side_in_order_per_person(tmp_path: Path) -> None:
    app = {"agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET, "name": "alerts"}
    state = SimulatorState(
        SimulatorSettings.model_validate(
            {"corps": [{"corp_id": SANDBOX_CORP_ID, "users": PEOPLE, "apps": [app]}]}
        )
    )
    raw = raw_config("http://wecom.test", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["delivery"].update(workers=WORKERS, poll_interval="1s")
    config = parse_config(raw)
    outbox = SQLiteOutbox(tmp_path / "outbox.db", synchronous="normal")
    wecom = SlowWeCom(state, 0.05)
    looked_up: list[int] = []
    next_due = outbox.next_due

    async def counted(keys: list[str]) -> dict[str, float | None]:
        looked_up.append(len(keys))
        return await next_due(keys)

    outbox.next_due = counted  # type: ignore[method-assign, assignment]
    async with httpx.AsyncClient(transport=wecom, base_url="http://wecom.test") as client:
        dispatcher = Dispatcher(config, outbox, client)
        await dispatcher.start()
        try:
            keys = []
            for person in PEOPLE:  # two notifications each, the second after the first
                spec = target_spec(validate_target({"app": "ops", "to_user": [person]}))
                key = target_key("default", spec)
                keys.append(key)
                for cluster in (f"{person}-first", f"{person}-second"):
                    payload = json.dumps(samples.node_down(1, cluster=cluster))
                    await outbox.accept("default", [NewJob(key, spec, payload)], None, 300, 1.0)
            dispatcher.wake(keys)

            def texts(person: str) -> list[str]:
                return [json.dumps(entry, ensure_ascii=False) for entry in state.entries(person)]

            await wait_for(lambda: all(len(texts(p)) == 2 for p in PEOPLE), "every message")
        finally:
            await dispatcher.stop()
            await outbox.close()
    for person in PEOPLE:
        first, second = texts(person)
        assert f"{person}-first" in first and f"{person}-second" in second  # in order
    # Side by side (one at a time, 240 × 50 ms would be 12 s), within the bound.
    assert 1 < wecom.most <= WORKERS, wecom.most
    # About one look-up per target and notification, not one of every target per finished task (240
    # tasks × 120 targets = 28,800).
    assert sum(looked_up) < 6 * len(PEOPLE), (sum(looked_up), len(looked_up))
