"""Channels turn a rendered `Message` into calls to WeCom (or to a webhook): one module per channel,
each with its `Channel` (sends; raises `DeliveryError`) and its `ChannelKind` (everything else).

What adding a channel takes (tests/test_channel_seam.py adds one that way and sends through it):
1. Its target model, config/targets/<channel>.py: a `TargetBase` naming the keys that select it
   (`selected_by`), its checks as written (`shape`) and the config sections its names refer to
   (`references`). Being defined joins it to `Target`; the folder is imported whole.
2. Its module here: the `Channel`, and a `ChannelKind` (model, labels, rate windows, content limit,
   `renders` if it does not send WeCom text, `build`). 3. One line in `_CHANNELS` below.
Trade-off: model and channel are two files in two layers, so that a config loads without the channels
(the config is a leaf); a section of its own in the config (`webhooks:`) is one more field of `Config`.

"Kind" means one thing in this code: a channel's kind, what the channel knows of its targets
(`ChannelKind`; `kind_of(target)`; `KINDS`, the registry). Its metrics labels are `channel_label` (the
label `channel`: app | chat | robot | webhook) and `target_label(target)` (the label `target`). Elsewhere
other words: a recipient written email:/mobile: has a `ContactForm` (config/contacts.py), a recipient's
place (to_user, to_party, to_tag, mention) is a `RecipientField`, a simulator fault is a `Fault`. "kind"
stays only where a name outside this code is spelt so: an incident event's `kind` (stored, and in the
incidents API), the outbox's `notifications.kind` column, the lookups metric's label `kind` (email,
mobile), OpenTelemetry's span kind (`tracing.span(kind=...)`), the simulator's fault `kinds` (its
settings, admin API and `--fault-kinds`), Kubernetes' `kind` (tests/test_deploy.py).
"""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.channels import app_chat, app_message, robot, webhook
from alertmanager_wecom.channels.app_chat import AppChatChannel
from alertmanager_wecom.channels.app_message import AppMessageChannel
from alertmanager_wecom.channels.base import Channel, ChannelKind, RateWindows, SendResult, token_for
from alertmanager_wecom.channels.robot import RobotChannel
from alertmanager_wecom.channels.webhook import WebhookChannel
from alertmanager_wecom.config import Config, Target
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
    "WebhookChannel",
    "build_channel",
    "kind_of",
    "register",
    "token_for",
    "withdraw",
]

# The registry: one line per channel.
_CHANNELS: tuple[ChannelKind[Any], ...] = (
    app_message.KIND,
    app_chat.KIND,
    robot.KIND,
    webhook.KIND,
)
# Each target model → its channel's kind.
KINDS: dict[type[Any], ChannelKind[Any]] = {kind.target: kind for kind in _CHANNELS}


def register(kind: ChannelKind[Any]) -> None:
    """A channel added at run time (a test's): its targets route, validate and send like any."""
    KINDS[kind.target] = kind


def withdraw(kind: ChannelKind[Any]) -> None:
    del KINDS[kind.target]


def kind_of(target: Target) -> ChannelKind[Any]:
    try:
        return KINDS[type(target)]
    except KeyError:
        raise KeyError(f"no channel sends to {type(target).__name__} (channels/__init__.py)") from None


def build_channel(target: Target, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]) -> Channel:
    return kind_of(target).build(target, config, api, tokens)
