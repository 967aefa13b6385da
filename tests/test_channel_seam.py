"""Issue 21's acceptance: a new channel is one module plus one registry line. tests/pigeon_channel.py is
such a module, loaded and registered at run time (the registry line is `register(KIND)`): its targets
validate with its own checks, route, render within its content limit and are sent through the real
dispatcher and outbox, with no other module of the package changed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.channels import kind_of, register, withdraw
from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.config.targets import members
from alertmanager_wecom.config.targets import withdraw as withdraw_target
from alertmanager_wecom.delivery.preview import preview_receiver
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.outbox import JobState
from alertmanager_wecom.rendering.fit import byte_len
from tests.helpers import raw_config
from tests.test_dispatcher import FakeTime, relay, simulator

MODULE = Path(__file__).with_name("pigeon_channel.py")


@pytest.fixture
def pigeon() -> Iterator[ModuleType]:
    """The channel's module, loaded afresh (defining its target model), registered, then withdrawn."""
    spec = importlib.util.spec_from_file_location("pigeon_channel_under_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register(module.KIND)  # the one registry line
    try:
        yield module
    finally:
        withdraw(module.KIND)
        withdraw_target(module.PigeonTarget)


def test_without_the_module_a_pigeon_is_no_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a target sends through either"):
        parse_config(raw_config("http://sim", tmp_path, {"pigeon": "coop"}))


def test_its_targets_validate_with_its_own_checks(tmp_path: Path, pigeon: ModuleType) -> None:
    assert pigeon.PigeonTarget in members()
    config = parse_config(raw_config("http://sim", tmp_path, {"pigeon": "coop", "send_resolved": False}))
    [target] = config.receivers[0].targets
    assert isinstance(target, pigeon.PigeonTarget) and kind_of(target) is pigeon.KIND
    with pytest.raises(ConfigError, match=r"receivers\[0\].targets\[0\]: a pigeon flies to its coop"):
        parse_config(raw_config("http://sim", tmp_path, {"pigeon": "coop", "to_user": ["a"]}))
    with pytest.raises(ConfigError, match="unknown coop 'attic'"):
        parse_config(raw_config("http://sim", tmp_path, {"pigeon": "attic"}))
    with pytest.raises(ConfigError, match=r"or a pigeon \(pigeon: COOP\)"):
        parse_config(raw_config("http://sim", tmp_path, {"pigeon": "coop", "robot": "sre"}))


@pytest.mark.anyio
async def test_it_routes_renders_within_its_limit_and_sends(tmp_path: Path, pigeon: ModuleType) -> None:
    config = parse_config(raw_config("http://sim", tmp_path, {"pigeon": "coop"}))
    notification = Notification.model_validate(samples.node_down(3))
    [shown] = preview_receiver(config, "default", notification)
    assert shown.target == "pigeon → coop" and len(shown.messages) > 1  # 300 bytes: split in parts
    assert all(m.bytes <= pigeon.LIMIT and m.limit == pigeon.LIMIT for m in shown.messages)
    time = FakeTime()
    async with relay(config, simulator(time), time) as r:
        await r.queue(samples.node_down(3))
        await r.dispatcher.start()
        await r.run_until_delivered()
        [job] = await r.jobs()
        sent = r.count("messages_sent", receiver="default", channel="pigeon", target="pigeon:coop")
    assert job.state == JobState.DONE and sent == len(pigeon.KIND.inbox)
    assert len(pigeon.KIND.inbox) == len(shown.messages)
    assert all(byte_len(m.content) <= pigeon.LIMIT for m in pigeon.KIND.inbox)
    assert "NodeDown" in pigeon.KIND.inbox[0].content
