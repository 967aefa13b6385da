"""Each channel's kind: its metrics labels (channel, target), rate keys and windows, descriptions."""

from __future__ import annotations

from alertmanager_wecom.channels import (
    KINDS,
    AppChatChannel,
    AppMessageChannel,
    RobotChannel,
    build_channel,
    kind_of,
)
from alertmanager_wecom.channels.base import Window
from alertmanager_wecom.config import Config, DeliverySettings, validate_target
from alertmanager_wecom.config.targets import members
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.wecom.api import WeComAPI


def _config(**delivery: object) -> Config:
    return parse_config(
        {
            "apps": {
                "ops": {"corp_id": "corp", "agent_id": 7, "secret": "s", "daily_quota": 1000},
                "bare": {"corp_id": "corp", "agent_id": 8, "secret": "s"},
            },
            "robots": {"sre": {"key": "k"}},
            "delivery": {"headroom": 0.5, **delivery},
        }
    )


def test_every_target_model_has_a_channel_and_every_channel_a_model() -> None:
    assert set(KINDS) == set(members())


def test_app_message_paces_each_recipient_and_the_apps_day() -> None:
    config = _config(member_per_minute=30, member_per_hour=1000)
    target = validate_target({"app": "ops", "to_user": ["a"], "to_party": ["2"], "to_tag": ["9"]})
    kind = kind_of(target)
    member = (Window(15, 60.0), Window(500, 3600.0))  # halved by the headroom
    assert kind.rate_windows(target, config, config.delivery) == [
        ("app:corp:7:user:a", member),
        ("app:corp:7:party:2", member),
        ("app:corp:7:tag:9", member),
        ("app:corp:7:day", (Window(500, 86400.0),)),
    ]
    assert (kind.channel_label, kind.target_label(target)) == ("app", "app:ops")
    assert kind.describe(target) == "app ops → a|party:2|tag:9" and kind.via(target) == "app ops"
    bare = validate_target({"app": "bare", "to_user": ["a"]})
    assert [key for key, _ in kind_of(bare).rate_windows(bare, config, config.delivery)] == [
        "app:corp:8:user:a"
    ]


def test_app_chat_limits_are_delivery_settings() -> None:
    target = validate_target({"app": "ops", "chat": "c1"})
    default = DeliverySettings()
    assert (default.chat_per_minute, default.chat_per_day) == (200, 10000)
    config = _config(chat_per_minute=40, chat_per_day=600)
    kind = kind_of(target)
    assert kind.rate_windows(target, config, config.delivery) == [
        ("app:corp:7:chat:c1", (Window(20, 60.0), Window(300, 86400.0)))
    ]
    assert (kind.channel_label, kind.target_label(target)) == ("chat", "app:ops")
    assert kind.describe(target) == "app ops → chat c1" and kind.via(target) == "app ops, chat c1"


def test_robot_is_paced_per_robot() -> None:
    config = _config(robot_per_minute=20)
    target = validate_target({"robot": "sre", "mention": ["@all"]})
    kind = kind_of(target)
    assert kind.rate_windows(target, config, config.delivery) == [("robot:sre", (Window(10, 60.0),))]
    assert (kind.channel_label, kind.target_label(target), kind.describe(target)) == (
        "robot",
        "robot:sre",
        "robot sre",
    )


def test_each_kind_builds_its_own_channel() -> None:
    config = _config()
    api = WeComAPI("http://sim/cgi-bin/", None)  # type: ignore[arg-type]  # nothing is sent here
    built = [
        build_channel(validate_target(spec), config, api, {})
        for spec in ({"app": "ops", "to_user": ["a"]}, {"app": "ops", "chat": "c1"}, {"robot": "sre"})
    ]
    assert [type(c) for c in built] == [AppMessageChannel, AppChatChannel, RobotChannel]
    assert [c.name for c in built] == ["app:ops→a", "app:ops→chat:c1", "robot:sre"]
