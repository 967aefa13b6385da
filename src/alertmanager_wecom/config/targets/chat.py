"""App chats (群聊会话): an app's appchat/send to a chat it made. The channel is channels/app_chat.py."""

from __future__ import annotations

from typing import Any, ClassVar

from alertmanager_wecom.config.targets.app import app_shape
from alertmanager_wecom.config.targets.base import TargetBase


class ChatTarget(TargetBase):
    """An app chat (群聊会话) of `app`: appchat/send to the chat's members."""

    selected_by: ClassVar[tuple[str, ...]] = ("app", "chat")
    references: ClassVar[tuple[tuple[str, str, str], ...]] = (("app", "app", "apps"),)

    app: str
    chat: str

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        app_shape(data)
