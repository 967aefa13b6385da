"""A rendered message, ready for a channel to send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Extras:
    """What on-call adds to a notification's first message: which escalation step it is and why
    (`escalated_after` seconds unacknowledged, `level`), and a signed link that acknowledges its group
    (`ack_url`), or, on a digest, every group it merged (`ack_groups` of them). Our own words and our own
    URL: never alert data."""

    escalated_after: float | None = None
    level: int = 0
    ack_url: str = ""
    ack_groups: int = 1


@dataclass(frozen=True)
class Message:
    msgtype: str  # text | markdown | textcard | template_card
    content: str  # text/markdown content, or the textcard description
    title: str = ""  # textcard only
    url: str = ""  # textcard only
    btntxt: str = ""  # textcard only
    mentions: tuple[str, ...] = ()  # group robots, text: mentioned_list (userids, or "@all")
    mention_mobiles: tuple[str, ...] = ()  # group robots, text: mentioned_mobile_list
    card: dict[str, Any] | None = field(default=None, compare=False)  # template_card: the card as sent

    def body(self) -> dict[str, Any]:
        """The msgtype-specific part of a WeCom message body."""
        if self.msgtype == "template_card" and self.card is not None:
            return self.card
        if self.msgtype == "textcard":
            card = {"title": self.title, "description": self.content, "url": self.url}
            if self.btntxt:
                card["btntxt"] = self.btntxt
            return card
        body: dict[str, Any] = {"content": self.content}
        if self.msgtype == "text" and self.mentions:
            body["mentioned_list"] = list(self.mentions)
        if self.msgtype == "text" and self.mention_mobiles:
            body["mentioned_mobile_list"] = list(self.mention_mobiles)
        return body
