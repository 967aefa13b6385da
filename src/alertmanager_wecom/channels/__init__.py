"""Channels turn a rendered `Message` into WeCom API calls. One module per channel.

Adding a channel: a module with a class that satisfies `Channel`, and one branch in `build_channel`.
"""

from __future__ import annotations

from alertmanager_wecom.channels.app_chat import AppChatChannel
from alertmanager_wecom.channels.app_message import AppMessageChannel
from alertmanager_wecom.channels.base import Channel, SendResult
from alertmanager_wecom.channels.robot import RobotChannel
from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

__all__ = [
    "AppChatChannel",
    "AppMessageChannel",
    "Channel",
    "RobotChannel",
    "SendResult",
    "build_channel",
    "token_for",
]


def token_for(app_name: str, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]) -> AccessToken:
    """The app's token cache, shared by every channel of that app."""
    token = tokens.get(app_name)
    if token is None:
        if app_name not in config.apps:
            raise KeyError(f"app {app_name!r} is not in the config (any more)")
        app = config.apps[app_name]
        token = tokens[app_name] = AccessToken(api, app.corp_id, app.secret)
    return token


def build_channel(target: Target, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]) -> Channel:
    if target.robot is not None:
        if target.robot not in config.robots:
            raise KeyError(f"robot {target.robot!r} is not in the config (any more)")
        return RobotChannel(api, config.robots[target.robot], target.robot)
    assert target.app is not None
    app = config.apps[target.app]
    token = token_for(target.app, config, api, tokens)
    if target.chat:
        return AppChatChannel(token, app, target.chat, app_name=target.app)
    return AppMessageChannel(token, app, target, app_name=target.app)
