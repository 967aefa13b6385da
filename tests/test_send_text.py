"""channels/text.py: how `send` cuts free text into messages and sends them in order."""

from __future__ import annotations

import asyncio

import pytest

from alertmanager_wecom.channels.base import SendResult
from alertmanager_wecom.channels.text import send_text
from alertmanager_wecom.rendering.fit import CONTENT_LIMITS, byte_len
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComError
from alertmanager_wecom.wecom.errcodes import TABLE


class RecordingChannel:
    """A channel that keeps what it is given; fails on the `fail_at`-th message (1-based) if set."""

    name = "app:ops→zhangsan"

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[Message] = []
        self.fail_at = fail_at

    async def send(self, message: Message) -> SendResult:
        if self.fail_at is not None and len(self.sent) + 1 == self.fail_at:
            raise WeComError(TABLE[45009], "45009 (API frequency limit reached)", errcode=45009)
        self.sent.append(message)
        return SendResult(invalid={"invaliduser": ["ghost"]} if len(self.sent) == 1 else {})

    async def send_image(self, png: bytes) -> SendResult:
        raise AssertionError("send_text sends no image")


async def collect(channel: RecordingChannel, text: str, msgtype: str) -> list[SendResult]:
    return [result async for result in send_text(channel, text, msgtype)]


def test_send_text_cuts_long_text_to_the_limit_in_order() -> None:
    lines = [f"第{i}行 " + "告警" * 40 for i in range(60)]
    text = "\n".join(lines)
    channel = RecordingChannel()
    results = asyncio.run(collect(channel, text, "markdown"))
    assert len(results) == len(channel.sent) > 1
    assert results[0].invalid == {"invaliduser": ["ghost"]}
    assert all(m.msgtype == "markdown" for m in channel.sent)
    assert all(byte_len(m.content) <= CONTENT_LIMITS["markdown"] for m in channel.sent)
    joined = "\n".join(m.content for m in channel.sent)
    assert [line for line in joined.splitlines() if line] == lines


def test_send_text_short_text_is_one_message() -> None:
    channel = RecordingChannel()
    asyncio.run(collect(channel, "hi", "text"))
    assert [(m.msgtype, m.content) for m in channel.sent] == [("text", "hi")]


def test_send_text_yields_each_result_before_a_later_part_fails() -> None:
    channel = RecordingChannel(fail_at=2)
    seen: list[SendResult] = []

    async def run() -> None:
        async for result in send_text(channel, "x" * 5000, "text"):
            seen.append(result)

    with pytest.raises(WeComError):
        asyncio.run(run())
    assert len(seen) == 1 and seen[0].invalid == {"invaliduser": ["ghost"]}
