"""App chats (群聊会话): ``appchat/send`` with the app's access token and a chatid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alertmanager_wecom.channels.app_message import app_prefix
from alertmanager_wecom.channels.base import (
    RateWindows,
    SendResult,
    TemplatedKind,
    token_for,
    upload_image,
    windows,
)
from alertmanager_wecom.config import AppConfig, ChatTarget
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

if TYPE_CHECKING:
    from alertmanager_wecom.config import Config, DeliverySettings


class AppChatChannel:
    def __init__(self, token: AccessToken, app: AppConfig, chat: str, app_name: str) -> None:
        self.token = token
        self.app = app
        self.chat = chat
        self._name = f"app:{app_name}→chat:{chat}"

    @property
    def name(self) -> str:
        return self._name

    async def send(self, message: Message) -> SendResult:
        body = {
            "chatid": self.chat,
            "msgtype": message.msgtype,
            message.msgtype: message.body(),
            "safe": self.app.safe,
        }
        await self.token.call("POST", "appchat/send", body=body)
        return SendResult()

    async def send_image(self, png: bytes) -> SendResult:
        # The config refuses charts for app chats (not checked against the simulator yet); WeCom takes
        # appchat/send image with a media_id as for app messages.
        media_id = await upload_image(self.token, png)
        body = {
            "chatid": self.chat,
            "msgtype": "image",
            "image": {"media_id": media_id},
            "safe": self.app.safe,
        }
        await self.token.call("POST", "appchat/send", body=body)
        return SendResult()


class AppChatKind(TemplatedKind):
    target = ChatTarget
    channel_label = "chat"

    def target_label(self, target: ChatTarget) -> str:
        return f"app:{target.app}"  # the chat id is not a bounded label

    def rate_windows(self, target: ChatTarget, config: Config, settings: DeliverySettings) -> RateWindows:
        # WeCom drops app-chat messages over its limits per chat (200/min, 10,000/day) without an error.
        key = f"{app_prefix(config.apps[target.app])}:chat:{target.chat}"
        return [(key, windows(settings, (settings.chat_per_minute, 60.0), (settings.chat_per_day, 86400.0)))]

    def via(self, target: ChatTarget) -> str:
        return f"app {target.app}, chat {target.chat}"

    def content_limit(self, target: ChatTarget, config: Config) -> int:
        msgtype = target.msgtype
        return fit.content_limit(msgtype)

    def describe(self, target: ChatTarget) -> str:
        return f"app {target.app} → chat {target.chat}"

    def build(
        self, target: ChatTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> AppChatChannel:
        token = token_for(target.app, config, api, tokens)
        return AppChatChannel(token, config.apps[target.app], target.chat, app_name=target.app)


KIND = AppChatKind()
