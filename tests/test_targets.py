"""The Target union: the YAML keys pick the member, the messages of the old single class stay, and a
target stored in the outbox by a version before the union still parses into the right member."""

from __future__ import annotations

from typing import Any

import pytest

from alertmanager_wecom.config import (
    AppTarget,
    ChatTarget,
    ConfigError,
    RobotTarget,
    parse_target,
    target_spec,
    validate_target,
)
from alertmanager_wecom.ingest.routing import target_key
from alertmanager_wecom.loading import parse_config

# Written by the single Target class (e1b9559) with model_dump_json(by_alias=True): rows like these may
# sit in a user's outbox across the upgrade.
OLD_APP = (
    '{"app":"ops","robot":null,"chat":null,"to_user":["zhangsan","{{ labels.owner }}"],"to_party":[],'
    '"to_tag":[],"msgtype":"markdown","send_resolved":true,"language":null,"time_zone":null,"template":null,'
    '"title_template":null,"max_messages":null,"mention":[],"mention_mobile":[],"mention_from":[],'
    '"max_recipients":20,"max_mentions":10,"fallback":{"to_user":["lisi"],"to_party":[],"to_tag":[]},'
    '"match":["severity=\\"critical\\""],"continue":false}'
)
OLD_CHAT = (
    '{"app":"ops","robot":null,"chat":"c1","to_user":[],"to_party":[],"to_tag":[],"msgtype":"text",'
    '"send_resolved":true,"language":null,"time_zone":null,"template":null,"title_template":null,'
    '"max_messages":null,"mention":[],"mention_mobile":[],"mention_from":[],"max_recipients":20,'
    '"max_mentions":10,"fallback":null,"match":[],"continue":true}'
)
OLD_ROBOT = (
    '{"app":null,"robot":"sre","chat":null,"to_user":[],"to_party":[],"to_tag":[],"msgtype":"markdown",'
    '"send_resolved":true,"language":null,"time_zone":null,"template":"t.j2","title_template":null,'
    '"max_messages":3,"mention":["@all"],"mention_mobile":[],"mention_from":["labels.owner"],'
    '"max_recipients":20,"max_mentions":10,"fallback":null,"match":[],"continue":true}'
)


def test_old_outbox_specs_parse_into_the_right_member() -> None:
    app = parse_target(OLD_APP)
    assert isinstance(app, AppTarget)
    assert app.to_user == ["zhangsan", "{{ labels.owner }}"] and app.fallback is not None
    assert app.fallback.to_user == ["lisi"] and app.continue_ is False and app.templated_recipients
    assert app.match == ['severity="critical"']
    chat = parse_target(OLD_CHAT)
    assert isinstance(chat, ChatTarget) and (chat.app, chat.chat, chat.msgtype) == ("ops", "c1", "text")
    robot = parse_target(OLD_ROBOT)
    assert isinstance(robot, RobotTarget)
    assert robot.robot == "sre" and robot.mention == ["@all"] and robot.mention_from == ["labels.owner"]
    assert (robot.template, robot.max_messages) == ("t.j2", 3)


@pytest.mark.parametrize("old", [OLD_APP, OLD_CHAT, OLD_ROBOT])
def test_a_target_is_stored_exactly_as_before_the_union(old: str) -> None:
    # The spec is hashed into the target key: the same spec keeps a waiting job and a new one of the
    # same target in one queue, in order, across the upgrade.
    target = parse_target(old)
    assert target_spec(target) == old
    assert parse_target(target_spec(target)) == target
    assert target_key("default", target_spec(target)) == target_key("default", old)


def test_parse_target_is_cached_and_refuses_what_is_not_a_target() -> None:
    assert parse_target(OLD_CHAT) is parse_target(OLD_CHAT)
    with pytest.raises(ValueError, match="either an app"):
        parse_target('{"msgtype": "text"}')


def test_a_non_empty_key_of_another_member_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="only group robots can @mention"):
        validate_target({"app": "ops", "to_user": ["a"], "mention": ["@all"]})
    with pytest.raises(ValueError, match="drop to_user/to_party/to_tag/chat"):
        validate_target({"robot": "sre", "chat": "c1"})
    # Empty ones are what an old spec carries: dropped.
    assert isinstance(validate_target({"app": "ops", "chat": "c", "to_user": [], "mention": []}), ChatTarget)


def _config(target: dict[str, Any]) -> dict[str, Any]:
    return {
        "apps": {"ops": {"corp_id": "c", "agent_id": 1, "secret": "s"}},
        "robots": {"sre": {"key": "k"}},
        "receivers": [{"name": "r", "targets": [target]}],
    }


@pytest.mark.parametrize(
    ("target", "member"),
    [
        ({"app": "ops", "to_user": ["a"]}, AppTarget),
        ({"app": "ops", "chat": "c1"}, ChatTarget),
        ({"robot": "sre", "mention": ["@all"]}, RobotTarget),
    ],
)
def test_the_yaml_keys_pick_the_member(target: dict[str, Any], member: type) -> None:
    assert type(parse_config(_config(target)).receivers[0].targets[0]) is member


def test_an_error_inside_a_member_names_the_yaml_path_without_the_union_tag() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config({"app": "ops", "chat": "c1", "max_messages": 99}))
    assert str(info.value).startswith("receivers[0].targets[0].max_messages: ")
    with pytest.raises(ConfigError) as info:
        parse_config(_config({"robot": "sre", "bogus": 1}))
    assert str(info.value) == "receivers[0].targets[0].bogus: unknown key"
