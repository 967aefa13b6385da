"""A rendered message, ready for a channel to send."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    msgtype: str  # text | markdown | textcard
    content: str  # text/markdown content, or the textcard description
    title: str = ""  # textcard only
    url: str = ""  # textcard only
    btntxt: str = ""  # textcard only
    alert_count: int = 0  # alerts shown in this message, for logs and metrics

    def body(self) -> dict[str, str]:
        """The msgtype-specific part of a WeCom message body."""
        if self.msgtype == "textcard":
            card = {"title": self.title, "description": self.content, "url": self.url}
            if self.btntxt:
                card["btntxt"] = self.btntxt
            return card
        return {"content": self.content}

    def visible_text(self) -> str:
        return f"{self.title}\n{self.content}" if self.title else self.content
