"""App chats (群聊会话): ``appchat/send`` with the app's access token and a chatid."""

from __future__ import annotations

from alertmanager_wecom.channels.base import SendResult
from alertmanager_wecom.config import AppConfig
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.token import AccessToken


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
