"""App chats (群聊会话): ``appchat/send`` with the app's access token and a chatid."""

from __future__ import annotations

from alertmanager_wecom.channels.base import SendResult
from alertmanager_wecom.config import AppConfig
from alertmanager_wecom.errcodes import Action
from alertmanager_wecom.message import Message
from alertmanager_wecom.token_cache import AccessToken
from alertmanager_wecom.wecom_api import WeComAPI, WeComError


class AppChatChannel:
    def __init__(self, api: WeComAPI, token: AccessToken, app: AppConfig, chat: str, app_name: str) -> None:
        self.api = api
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
        for attempt in (1, 2):
            token = await self.token.get()
            try:
                await self.api.call("POST", "appchat/send", params={"access_token": token}, body=body)
            except WeComError as exc:
                if exc.action is Action.REFRESH_TOKEN and attempt == 1:
                    self.token.invalidate(token)
                    continue
                raise
            return SendResult()
        raise AssertionError("unreachable: the second attempt returns or raises")
