"""A channel that exists only for tests/test_channel_seam.py: the whole of a new channel, in one module
(its target model, its checks, its content limit, its channel and kind), registered at run time.
Never imported at collection: loading it defines its target model, which joins `Target`."""

from __future__ import annotations

from typing import Any, ClassVar

from alertmanager_wecom.channels.base import OwnRendering, RateWindows, SendResult, Window
from alertmanager_wecom.config import Config, DeliverySettings
from alertmanager_wecom.config.targets import TargetBase
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

LIMIT = 300  # bytes a pigeon carries
COOPS = ("coop",)  # where pigeons fly (a config section of its own would be a field of Config)


class PigeonTarget(TargetBase):
    selected_by: ClassVar[tuple[str, ...]] = ("pigeon",)
    sends_through: ClassVar[str] = "a pigeon (pigeon: COOP)"

    pigeon: str

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        if data.get("to_user"):
            raise ValueError("a pigeon flies to its coop: drop to_user")
        if data.get("pigeon") not in COOPS:
            raise ValueError(f"pigeon: unknown coop {data.get('pigeon')!r} (coops: {', '.join(COOPS)})")


class PigeonChannel:
    def __init__(self, coop: str, inbox: list[Message]) -> None:
        self.inbox = inbox
        self._name = f"pigeon:{coop}"

    @property
    def name(self) -> str:
        return self._name

    async def send(self, message: Message) -> SendResult:
        self.inbox.append(message)
        return SendResult()

    async def send_image(self, png: bytes) -> SendResult:
        raise NotImplementedError


class PigeonKind:
    target = PigeonTarget
    channel_label = "pigeon"

    def __init__(self) -> None:
        self.inbox: list[Message] = []

    def target_label(self, target: PigeonTarget) -> str:
        return f"pigeon:{target.pigeon}"

    def rate_windows(self, target: PigeonTarget, config: Config, settings: DeliverySettings) -> RateWindows:
        return [(f"pigeon:{target.pigeon}", (Window(1000, 60.0),))]

    def via(self, target: PigeonTarget) -> str:
        return f"pigeon {target.pigeon}"

    def describe(self, target: PigeonTarget) -> str:
        return f"pigeon → {target.pigeon}"

    def content_limit(self, target: PigeonTarget, config: Config) -> int:
        return LIMIT

    def renders(self, target: PigeonTarget, config: Config) -> OwnRendering | None:
        return None  # WeCom's text, from the target's templates, within LIMIT

    def build(
        self, target: PigeonTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> PigeonChannel:
        return PigeonChannel(target.pigeon, self.inbox)


KIND = PigeonKind()
