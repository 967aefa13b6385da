"""Group robots (群机器人): ``webhook/send?key=KEY``. No token, no trusted IP; the key is the secret."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from alertmanager_wecom.channels.base import RateWindows, SendResult, TemplatedKind, windows
from alertmanager_wecom.config import RobotConfig, RobotTarget
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

if TYPE_CHECKING:
    from alertmanager_wecom.config import Config, DeliverySettings


class RobotChannel:
    def __init__(self, api: WeComAPI, robot: RobotConfig, name: str) -> None:
        self.api = api
        self.robot = robot
        self._name = f"robot:{name}"

    @property
    def name(self) -> str:
        return self._name

    async def send(self, message: Message) -> SendResult:
        return await self._post({"msgtype": message.msgtype, message.msgtype: message.body()})

    async def send_image(self, png: bytes) -> SendResult:
        """The robot's image message: the picture itself, base64, with the md5 of its bytes."""
        image = {"base64": base64.b64encode(png).decode("ascii"), "md5": hashlib.md5(png).hexdigest()}  # noqa: S324 - WeCom's checksum, not security
        return await self._post({"msgtype": "image", "image": image})

    async def _post(self, body: dict[str, Any]) -> SendResult:
        if self.robot.url is not None:
            await self.api.call("POST", self.robot.url.reveal(), body=body)
        else:
            assert self.robot.key is not None
            await self.api.call("POST", "webhook/send", params={"key": self.robot.key.reveal()}, body=body)
        return SendResult()


class RobotKind(TemplatedKind):
    target = RobotTarget
    channel_label = "robot"

    def target_label(self, target: RobotTarget) -> str:
        return f"robot:{target.robot}"

    def rate_windows(self, target: RobotTarget, config: Config, settings: DeliverySettings) -> RateWindows:
        return [(f"robot:{target.robot}", windows(settings, (settings.robot_per_minute, 60.0)))]

    def via(self, target: RobotTarget) -> str:
        return f"robot {target.robot}"

    def content_limit(self, target: RobotTarget, config: Config) -> int:
        msgtype = target.msgtype
        if fit.detail_msgtype(msgtype) in ("markdown", "markdown_v2"):
            return fit.ROBOT_MARKDOWN_LIMIT  # a robot's markdown takes 4096 bytes
        return fit.content_limit(msgtype)

    def describe(self, target: RobotTarget) -> str:
        return f"robot {target.robot}"

    def build(
        self, target: RobotTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> RobotChannel:
        if target.robot not in config.robots:
            raise KeyError(f"robot {target.robot!r} is not in the config (any more)")
        return RobotChannel(api, config.robots[target.robot], target.robot)


KIND = RobotKind()
