"""Group robots (群机器人): ``webhook/send?key=KEY``. No token, no trusted IP; the key is the secret."""

from __future__ import annotations

from alertmanager_wecom.channels.base import SendResult
from alertmanager_wecom.config import RobotConfig
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI


class RobotChannel:
    def __init__(self, api: WeComAPI, robot: RobotConfig, name: str) -> None:
        self.api = api
        self.robot = robot
        self._name = f"robot:{name}"

    @property
    def name(self) -> str:
        return self._name

    async def send(self, message: Message) -> SendResult:
        body = {"msgtype": message.msgtype, message.msgtype: message.body()}
        if self.robot.url is not None:
            await self.api.call("POST", self.robot.url.reveal(), body=body)
        else:
            assert self.robot.key is not None
            await self.api.call("POST", "webhook/send", params={"key": self.robot.key.reveal()}, body=body)
        return SendResult()
