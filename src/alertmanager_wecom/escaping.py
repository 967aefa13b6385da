"""Alert data is content, never structure: neutralising label and annotation values for each msgtype.

Labels and annotations are written by monitored systems and by anyone who can set a label. WeCom's
formats have no escape character, so a value that contains markup is made inert by swapping each markup
character for its full-width twin (``<`` → ``＜``, ``*`` → ``＊``, ``#`` → ``＃``): a reader sees the same
text, WeCom's renderer sees no tag, heading, quote, link, image, colour, mention or div.

- Label values (and keys) are one line: line breaks and other control characters become spaces.
- Annotations are multi-line by nature: their line breaks stay, as plain line breaks; what follows one
  cannot open a heading, quote or list, since the characters that would are neutralised too.
- URLs (generatorURL, runbook_url, externalURL) are links only when they are http(s); characters that
  could close the link or the tag around them are percent-encoded.
- `Safe` marks text that is markup on purpose (our own strings, sanitised URLs, and annotations that the
  operator opted into with ``render.markdown_annotations``). Templates escape every other value they
  print (Jinja's ``finalize``), so a user template is as safe as ours unless it says ``| raw``.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from typing import Final

__all__ = ["Safe", "annotation_text", "escaper", "finalizer", "label_text", "safe_url"]


class Safe(str):
    """Text that is printed as it is: markup on purpose, never alert data unless the operator opted in."""

    __slots__ = ()


# Full-width (or otherwise look-alike) characters that no WeCom renderer reads as markup.
_WIDE: Final = {
    "<": "＜",
    ">": "＞",
    "[": "［",
    "]": "］",
    "*": "＊",
    "#": "＃",
    "`": "｀",
    "&": "＆",
    "\\": "＼",
    "_": "＿",
    "~": "～",
    "|": "｜",
    '"': "＂",
}
# text: only <a href> is markup. textcard: <div class="…">. markdown: WeCom's subset (headings, bold,
# links, code, quotes, <font>, <@mention>). markdown_v2 adds lists, tables, emphasis and strikethrough.
_CHARS: Final = {
    "text": "<>&",
    "textcard": "<>&",
    "markdown": "<>[]*#`&\\",
    "markdown_v2": "<>[]*#`&\\_~|",
}
_TABLES: Final = {msgtype: str.maketrans({c: _WIDE[c] for c in chars}) for msgtype, chars in _CHARS.items()}
# markdown_v2 also reads structure at the start of a line: "- item", "+ item", "1. item", "---", "===".
_V2_LINE_START: Final = re.compile(r"(?m)^([ \t]*)(?:([-+=])|(\d+)([.)]))")
_V2_WIDE_START: Final = {"-": "－", "+": "＋", "=": "＝", ".": "．", ")": "）"}

# Characters that break a line or steer the display: never part of a one-line value.
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _is_break_or_control(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def label_text(value: str) -> str:
    """One line: every line break and control character becomes a space; bidi overrides go."""
    if value.isprintable():
        return value
    return "".join(("" if char in _BIDI else " ") if _is_break_or_control(char) else char for char in value)


# What str.splitlines() breaks on, "\r\n" first so that it is one break.
_LINE_BREAK: Final = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def annotation_text(value: str) -> str:
    """Line breaks kept as plain "\\n" (any kind of break, each one); other control characters
    become spaces."""
    return "\n".join(label_text(line) for line in _LINE_BREAK.split(value))


def escaper(msgtype: str) -> Callable[[str], str]:
    """The function that makes a value inert in `msgtype` (text, markdown, markdown_v2, textcard)."""
    table = _TABLES[msgtype]
    if msgtype != "markdown_v2":
        return lambda value: value.translate(table)

    def escape_v2(value: str) -> str:
        value = value.translate(table)
        return _V2_LINE_START.sub(_v2_start, value)

    return escape_v2


def _v2_start(match: re.Match[str]) -> str:
    indent, sign, number, dot = match.groups()
    if sign is not None:
        return indent + _V2_WIDE_START[sign]
    # "1." → "1．": the number stays readable, the list marker goes.
    return indent + number + _V2_WIDE_START[dot]


def finalizer(msgtype: str) -> Callable[[object], object]:
    """Jinja's ``finalize``: every printed value that is not `Safe` is escaped for `msgtype`."""
    escape = escaper(msgtype)

    def finalize(value: object) -> object:
        if isinstance(value, Safe) or not isinstance(value, str):
            return value
        return escape(value)

    return finalize


# Kept as they are in a URL: the characters RFC 3986 allows, minus those that close a markdown link,
# an HTML attribute or a tag. "%" stays, so that an already encoded URL is not encoded twice.
_URL_SAFE: Final = "/:?#=&;,+$!@%.-_~"


def safe_url(value: str) -> Safe:
    """An http(s) URL that cannot break out of ``[text](url)`` or ``<a href="url">``; else ""."""
    value = value.strip()
    parts = urllib.parse.urlsplit(value) if value.isprintable() else None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return Safe("")
    return Safe(urllib.parse.quote(value, safe=_URL_SAFE))
