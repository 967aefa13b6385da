"""WeCom's byte limits, and cutting text to them without splitting a UTF-8 character.

WeCom counts UTF-8 bytes, not characters, and silently truncates what is over: a Chinese character
is 3 bytes, so 2048 bytes hold about 680 of them.
"""

from __future__ import annotations

from typing import Final

ELLIPSIS: Final = "…"

# msgtype → limit of its main content field, in UTF-8 bytes
CONTENT_LIMITS: Final[dict[str, int]] = {"text": 2048, "markdown": 2048, "markdown_v2": 4096}
ROBOT_MARKDOWN_LIMIT: Final = 4096  # group robots take twice as much markdown (and reject, not cut, more)
# (channels/robot.py asks for it: a channel's kind says what its messages may hold)
TEXTCARD_TITLE_LIMIT: Final = 128
TEXTCARD_DESCRIPTION_LIMIT: Final = 512
TEXTCARD_URL_LIMIT: Final = 2048
TEXTCARD_BTNTXT_CHARS: Final = 4


def byte_len(text: str) -> int:
    return len(text.encode("utf-8"))


def detail_msgtype(msgtype: str) -> str:
    """The msgtype of a target's text messages: a card target's detail messages are markdown."""
    return "markdown" if msgtype == "template_card" else msgtype


def content_limit(msgtype: str) -> int:
    """The bytes of content WeCom takes in a message of `msgtype` (an app's, or an app chat's)."""
    msgtype = detail_msgtype(msgtype)
    if msgtype == "textcard":
        return TEXTCARD_DESCRIPTION_LIMIT
    return CONTENT_LIMITS[msgtype]


def truncate_utf8(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes, on a character boundary, ending with `marker`."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker_bytes = marker.encode("utf-8")
    if len(marker_bytes) > limit:
        marker_bytes = b""
    cut = data[: limit - len(marker_bytes)]
    # errors="ignore" drops the partial character that the byte cut may leave at the end.
    return cut.decode("utf-8", errors="ignore") + marker_bytes.decode("utf-8")


def split_text(text: str, limit: int) -> list[str]:
    """Split free text into chunks of at most `limit` bytes, preferring line breaks."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while byte_len(line) > limit:
            head = truncate_utf8(line, limit, marker="")
            if current:
                chunks.append(current)
                current = ""
            chunks.append(head)
            line = line[len(head) :]
        if byte_len(current + line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current or not chunks:
        chunks.append(current)
    return [c.rstrip("\n") or c for c in chunks]
