"""Channels turn a rendered `Message` into WeCom API calls. One module per channel.

Adding a channel: a module with a class that satisfies `Channel`, and one line in `build_channel`.
"""

from __future__ import annotations

from alertmanager_wecom.channels.app_message import AppMessageChannel
from alertmanager_wecom.channels.base import Channel, SendResult
from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.token_cache import AccessToken
from alertmanager_wecom.wecom_api import WeComAPI

__all__ = ["AppMessageChannel", "Channel", "SendResult", "build_channel"]


def build_channel(target: Target, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]) -> Channel:
    app = config.apps[target.app]
    token = tokens.get(target.app)
    if token is None:
        token = tokens[target.app] = AccessToken(api, app.corp_id, app.secret)
    return AppMessageChannel(api, token, app, target, app_name=target.app)
