"""WeCom app messages (应用消息): ``message/send`` with an app's access token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alertmanager_wecom.channels.base import (
    RateWindows,
    SendResult,
    TemplatedKind,
    token_for,
    upload_image,
    windows,
)
from alertmanager_wecom.config import AppConfig, AppTarget
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

if TYPE_CHECKING:
    from alertmanager_wecom.config import Config, DeliverySettings

_PARTIAL_KEYS = ("invaliduser", "invalidparty", "invalidtag", "unlicenseduser")


def recipients(target: AppTarget) -> str:
    return "|".join(
        target.to_user + [f"party:{p}" for p in target.to_party] + [f"tag:{t}" for t in target.to_tag]
    )


def app_prefix(app: AppConfig) -> str:
    """Rate keys of an app: one app (corp and agent), whatever name the config gives it."""
    return f"app:{app.corp_id}:{app.agent_id}"


class AppMessageChannel:
    def __init__(self, token: AccessToken, app: AppConfig, target: AppTarget, app_name: str = "") -> None:
        self.token = token
        self.app = app
        self.target = target
        self._name = f"app:{app_name or app.agent_id}→{recipients(target)}"

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
        code = reply.get("response_code")
        return SendResult(invalid=invalid, response_code=code if isinstance(code, str) else "")

    async def send_image(self, png: bytes) -> SendResult:
        media_id = await upload_image(self.token, png)
        body = self.body(Message("image", ""))
        body["image"] = {"media_id": media_id}
        await self.token.call("POST", "message/send", body=body)
        return SendResult()


class AppMessageKind(TemplatedKind):
    target = AppTarget
    channel_label = "app"

    def target_label(self, target: AppTarget) -> str:
        return f"app:{target.app}"

    def rate_windows(self, target: AppTarget, config: Config, settings: DeliverySettings) -> RateWindows:
        app = config.apps[target.app]
        prefix = app_prefix(app)
        member = windows(settings, (settings.member_per_minute, 60.0), (settings.member_per_hour, 3600.0))
        # A party or tag is paced like one member: its members are not known here.
        keys = [f"{prefix}:user:{u}" for u in target.to_user] + [
            f"{prefix}:party:{p}" for p in target.to_party
        ]
        keys += [f"{prefix}:tag:{t}" for t in target.to_tag]
        out = [(key, member) for key in keys]
        if app.daily_quota:
            out.append((f"{prefix}:day", windows(settings, (app.daily_quota, 86400.0))))
        return out

    def via(self, target: AppTarget) -> str:
        return f"app {target.app}"

    def content_limit(self, target: AppTarget, config: Config) -> int:
        msgtype = target.msgtype
        return fit.content_limit(msgtype)

    def describe(self, target: AppTarget) -> str:
        return f"app {target.app} → {recipients(target)}"

    def build(
        self, target: AppTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> AppMessageChannel:
        token = token_for(target.app, config, api, tokens)
        return AppMessageChannel(token, config.apps[target.app], target, app_name=target.app)


KIND = AppMessageKind()
