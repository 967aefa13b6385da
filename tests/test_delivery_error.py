"""Delivery is typed on the channel-neutral `DeliveryError` (reasons.py), not on WeCom's error (issue 21):
a channel that is not WeCom (the escalation webhook coming next) raises it, and delivery retries,
backs off and dead-letters on its fields alone. The channel's send is replaced by one that fails as
such a channel would; everything else is the real dispatcher, outbox and clock of tests/test_dispatcher.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.outbox import JobState
from alertmanager_wecom.reasons import DeliveryError, Reason
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComError
from tests.test_dispatcher import FakeTime, make_config, relay, simulator

pytestmark = pytest.mark.anyio


def test_wecoms_error_is_a_delivery_error() -> None:
    assert issubclass(WeComError, DeliveryError)


async def test_a_neutral_error_is_retried_then_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    time = FakeTime()
    config = make_config(tmp_path, max_age="30s")
    attempts: list[float] = []

    async def failing(route: TargetRoute, message: Message) -> object:
        attempts.append(time())
        raise DeliveryError(Reason.NETWORK, "gateway answered 502", retryable=True, code="502")

    async with relay(config, simulator(time), time) as r:
        r.dispatcher.deliver.send = failing  # type: ignore[method-assign, assignment]
        await r.dispatcher.start()
        await r.queue(samples.node_down(1))

        async def dead() -> bool:
            return bool(await r.outbox.list_jobs(JobState.DEAD, 1))

        await r.run_until(dead)
        [job] = await r.jobs(JobState.DEAD)
        assert job.reason == Reason.NETWORK and "gave up after 30s" in (job.last_error or "")
        assert len(attempts) >= 3 and attempts == sorted(attempts) and attempts[-1] - attempts[0] >= 5
        assert r.count("wecom_errors", errcode="502") == len(attempts)


async def test_a_permanent_neutral_error_is_a_dead_letter_at_once(tmp_path: Path) -> None:
    time = FakeTime()
    config = make_config(tmp_path)
    calls = 0

    async def refused(route: TargetRoute, message: Message) -> object:
        nonlocal calls
        calls += 1
        raise DeliveryError(Reason.BAD_MESSAGE, "the gateway refused the body (400)", retryable=False)

    async with relay(config, simulator(time), time) as r:
        r.dispatcher.deliver.send = refused  # type: ignore[method-assign, assignment]
        await r.dispatcher.start()
        await r.queue(samples.node_down(1))

        async def dead() -> bool:
            return bool(await r.outbox.list_jobs(JobState.DEAD, 1))

        await r.run_until(dead)
        [job] = await r.jobs(JobState.DEAD)
        assert calls == 1 and job.reason == Reason.BAD_MESSAGE and "400" in (job.last_error or "")
