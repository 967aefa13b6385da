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

import functools
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from typing import Final

__all__ = ["Safe", "annotation_text", "escaper", "finalizer", "label_text", "safe_url", "trusted_markdown"]


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
    "\\": "＼",
    "_": "＿",
    "~": "～",
    "|": "｜",
    "-": "－",
    "+": "＋",
    "=": "＝",
    ".": "．",
    ")": "）",
}
# Markup wherever it stands. text: only <a href>. textcard: <div class="…">. markdown: WeCom's subset
# (bold, links, code, <font>, <@mention>). markdown_v2 adds tables. (Entities such as &lt; are not
# markup: a renderer turns them into the character, shown as text.)
_CHARS: Final = {
    "text": "<>",
    "textcard": "<>",
    "markdown": "<>[]*`",
    "markdown_v2": "<>[]*`|",
}
_TABLES: Final = {msgtype: str.maketrans({c: _WIDE[c] for c in chars}) for msgtype, chars in _CHARS.items()}
# Markup only at the start of a line (the start of a value counts: a template may put it there):
# "# heading", "- item", "+ item", "1. item", and the "===" / "---" lines of headings and rules.
_LINE_START: Final = re.compile(
    r"(?m)^([ \t]*)(?:(#)|([-+])(?=[ \t]|$)|(\d+)([.)])(?=[ \t]|$)|([=-])(?=[=-]*[ \t]*$))"
)
# A backslash escapes the punctuation after it (also the template's own, right after the value).
_BACKSLASH: Final = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)")
# markdown_v2 emphasis and strikethrough: "_" and "~" open them unless letters or digits stand on
# both sides (node_exporter stays as it is).
_FLANKING: Final = re.compile(r"(?<![^\W_])[_~]|[_~](?![^\W_])")


# What may need escaping: a markup character, a line break, or a line-start marker at the start.
_SUSPECT: Final = re.compile(r"[<>\[\]*`\\#\n]|^[ \t]*[-+=\d]")
_SUSPECT_V2: Final = re.compile(r"[<>\[\]*`\\#\n|_~]|^[ \t]*[-+=\d]")


def _line_start(match: re.Match[str]) -> str:
    indent, hash_, sign, number, dot, rule = match.groups()
    if hash_ is not None:
        return indent + _WIDE["#"]
    if sign is not None:
        return indent + _WIDE[sign]
    if number is not None:
        return indent + number + _WIDE[dot]  # "1." → "1．": the number stays, the list marker goes
    return indent + _WIDE[rule]


def _wide(match: re.Match[str]) -> str:
    return _WIDE[match.group()]


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
    """Line breaks kept as plain "\\n" (any line break, each one); other control characters
    become spaces."""
    if value.isprintable():
        return value
    return "\n".join(label_text(line) for line in _LINE_BREAK.split(value))


def escaper(msgtype: str) -> Callable[[str], str]:
    """The function that makes a value inert in `msgtype` (text, markdown, markdown_v2, textcard)."""
    table = _TABLES[msgtype]
    if msgtype in ("text", "textcard"):
        return lambda value: value.translate(table) if "<" in value or ">" in value else value
    v2 = msgtype == "markdown_v2"
    # Most values (names, instances, numbers) hold nothing to escape: one search tells.
    suspect = _SUSPECT_V2 if v2 else _SUSPECT

    def escape_markdown(value: str) -> str:
        if suspect.search(value) is None:
            return value
        value = _LINE_START.sub(_line_start, value.translate(table))
        if "\\" in value:
            value = _BACKSLASH.sub(_wide, value)
        if v2 and ("_" in value or "~" in value):
            value = _FLANKING.sub(_wide, value)
        return value

    return escape_markdown


def finalizer(msgtype: str) -> Callable[[object], object]:
    """Jinja's ``finalize``: every printed value is escaped for `msgtype`, except `Safe` text and
    numbers. (Not only strings: ``{{ a.labels }}`` prints a dict, whose text holds the values.)"""
    escape = escaper(msgtype)

    def finalize(value: object) -> object:
        cls = type(value)
        if cls is str:
            return escape(value)  # type: ignore[arg-type]
        if cls is Safe or cls is int or cls is float or value is None:
            return value
        return value if isinstance(value, Safe) else escape(str(value))

    return finalize


_LINK: Final = re.compile(r"\[([^\[\]\n]{1,200})\]\(([^()\s]{1,2048})\)")


def trusted_markdown(value: str, msgtype: str) -> Safe:
    """An annotation the operator opted into (``render.markdown_annotations``): its ``[text](url)``
    links are kept (http(s) only); everything else is neutralised as usual. Prometheus annotations
    often interpolate labels, so even a trusted one cannot mention people or add headings."""
    escape = escaper(msgtype)
    out: list[str] = []
    end = 0
    for match in _LINK.finditer(value):
        url = safe_url(match.group(2))
        if not url:
            continue
        out.append(escape(value[end : match.start()]))
        out.append(f"[{escape(match.group(1))}]({url})")
        end = match.end()
    out.append(escape(value[end:]))
    return Safe("".join(out))


# Kept as they are in a URL: the characters RFC 3986 allows, minus those that close a markdown link,
# an HTML attribute or a tag. "%" stays, so that an already encoded URL is not encoded twice.
_URL_SAFE: Final = "/:?#=&;,+$!@%.-_~"
_HOST_SAFE: Final = ":@[]%.-_~"  # brackets stay around an IPv6 address


@functools.lru_cache(maxsize=4096)
def safe_url(value: str) -> Safe:
    """An http(s) URL that cannot break out of ``[text](url)`` or ``<a href="url">``; else "".
    (Cached: every alert of a group usually carries the same generator and runbook URLs.)"""
    value = value.strip()
    if not value.isprintable():
        return Safe("")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:  # "http://[::1", a host the parser refuses: no link, never an error
        return Safe("")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return Safe("")
    rest = value[len(parts.scheme) + 3 + len(parts.netloc) :]
    host = urllib.parse.quote(parts.netloc, safe=_HOST_SAFE)
    return Safe(f"{scheme}://{host}{urllib.parse.quote(rest, safe=_URL_SAFE)}")
