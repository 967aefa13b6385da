"""The one interface every channel implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from alertmanager_wecom.rendering.message import Message


@dataclass(frozen=True)
class SendResult:
    # Recipients WeCom refused while delivering to the rest: {"invaliduser": [...], ...}
    invalid: dict[str, list[str]] = field(default_factory=dict)


class Channel(Protocol):
    """Sends one message; raises `WeComError` (with the errcode table's action) on failure."""

    @property
    def name(self) -> str:
        """Where messages go, for logs and metrics: never contains a secret."""
        ...

    async def send(self, message: Message) -> SendResult: ...
