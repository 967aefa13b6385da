"""Free text sent by hand (`alertmanager-wecom send`): cut to fit the message type, sent in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from alertmanager_wecom.channels.base import Channel, SendResult
from alertmanager_wecom.rendering.fit import CONTENT_LIMITS, split_text
from alertmanager_wecom.rendering.message import Message


async def send_text(channel: Channel, text: str, msgtype: str) -> AsyncIterator[SendResult]:
    """Send `text` as as many `msgtype` messages as its length needs, yielding each one's result as it
    is sent, so that a caller reports what WeCom skipped before a later part fails (WeComError)."""
    for chunk in split_text(text, CONTENT_LIMITS[msgtype]):
        yield await channel.send(Message(msgtype, chunk))
