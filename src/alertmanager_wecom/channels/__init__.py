"""Channels turn a rendered `Message` into WeCom API calls. One module per channel, each owning its
target member's kind, metrics label, rate limits and descriptions (its `ChannelKind`).

Adding a channel: its module, its member of the `Target` union (config/targets.py), one line in `KINDS`.
"""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.channels import app_chat, app_message, robot
from alertmanager_wecom.channels.app_chat import AppChatChannel
from alertmanager_wecom.channels.app_message import AppMessageChannel
from alertmanager_wecom.channels.base import Channel, ChannelKind, RateWindows, SendResult, token_for
from alertmanager_wecom.channels.robot import RobotChannel
from alertmanager_wecom.config import AnyTarget, AppTarget, ChatTarget, Config, RobotTarget
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

__all__ = [
    "KINDS",
    "AppChatChannel",
    "AppMessageChannel",
    "Channel",
    "ChannelKind",
    "RateWindows",
    "RobotChannel",
    "SendResult",
    "build_channel",
    "kind_of",
    "token_for",
]

# The registry: each member of the Target union → its channel's kind.
KINDS: dict[type[Any], ChannelKind[Any]] = {
    AppTarget: app_message.KIND,
    ChatTarget: app_chat.KIND,
    RobotTarget: robot.KIND,
}


def kind_of(target: AnyTarget) -> ChannelKind[Any]:
    return KINDS[type(target)]


def build_channel(
    target: AnyTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
) -> Channel:
    return kind_of(target).build(target, config, api, tokens)
