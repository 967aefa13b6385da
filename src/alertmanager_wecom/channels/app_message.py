"""WeCom app messages (应用消息): ``message/send`` with an app's access token."""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.channels.base import SendResult
from alertmanager_wecom.config import AppConfig, Target
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.token import AccessToken

_PARTIAL_KEYS = ("invaliduser", "invalidparty", "invalidtag", "unlicenseduser")


class AppMessageChannel:
    def __init__(self, token: AccessToken, app: AppConfig, target: Target, app_name: str = "") -> None:
        self.token = token
        self.app = app
        self.target = target
        recipients = "|".join(
            target.to_user + [f"party:{p}" for p in target.to_party] + [f"tag:{t}" for t in target.to_tag]
        )
        self._name = f"app:{app_name or app.agent_id}→{recipients}"

    @property
    def name(self) -> str:
        return self._name

    def body(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agentid": self.app.agent_id,
            "msgtype": message.msgtype,
            message.msgtype: message.body(),
            "safe": self.app.safe,
        }
        if self.target.to_user:
            body["touser"] = "|".join(self.target.to_user)
        if self.target.to_party:
            body["toparty"] = "|".join(self.target.to_party)
        if self.target.to_tag:
            body["totag"] = "|".join(self.target.to_tag)
        if self.app.duplicate_check_seconds:
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = self.app.duplicate_check_seconds
        return body

    async def send(self, message: Message) -> SendResult:
        body = self.body(message)
        reply = await self.token.call("POST", "message/send", body=body)
        invalid = {}
        for key in _PARTIAL_KEYS:
            value = reply.get(key)
            if isinstance(value, str) and value:
                invalid[key] = value.split("|")
        return SendResult(invalid=invalid)
