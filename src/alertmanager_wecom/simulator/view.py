"""How the WeCom client shows a message, for the simulator's inbox page: WeCom's markdown subset (headings,
bold, links, quotes, the three font colors) and text messages' <a href> links. Everything else stays text."""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_COLORS = {"info": "#2f9e44", "comment": "#868e96", "warning": "#e8590c"}
_FONT = re.compile(r"&lt;font color=&quot;(info|comment|warning)&quot;&gt;(.*?)&lt;/font&gt;")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_TEXT_LINK = re.compile(r'&lt;a href=&quot;(https?://[^&"]+)&quot;&gt;(.*?)&lt;/a&gt;')
_MENTION = re.compile(r"&lt;@([^&]+)&gt;")


def _inline(line: str) -> str:
    line = _FONT.sub(lambda m: f'<span style="color:{_COLORS[m.group(1)]}">{m.group(2)}</span>', line)
    line = _BOLD.sub(r"<b>\1</b>", line)
    line = _LINK.sub(r'<a href="\2" rel="noreferrer">\1</a>', line)
    return _MENTION.sub(r'<span class="mention">@\1</span>', line)


def render(msgtype: str, text: str) -> Markup:
    escaped = html.escape(text, quote=True)
    if msgtype == "text":
        linked = _TEXT_LINK.sub(r'<a href="\1" rel="noreferrer">\2</a>', escaped)
        return Markup(f'<div class="text">{linked}</div>')  # noqa: S704 - built from escaped text
    if msgtype not in ("markdown", "markdown_v2"):
        return Markup(f'<div class="text">{escaped}</div>')  # noqa: S704 - escaped
    out = []
    for line in escaped.split("\n"):
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            out.append(f'<div class="h h{level}">{_inline(heading.group(2))}</div>')
        elif line.startswith("&gt; "):
            out.append(f'<div class="quote">{_inline(line[5:])}</div>')
        elif line.startswith("- ") and msgtype == "markdown_v2":
            out.append(f'<div class="li">• {_inline(line[2:])}</div>')
        elif line.strip():
            out.append(f"<div>{_inline(line)}</div>")
        else:
            out.append('<div class="gap"></div>')
    return Markup("".join(out))  # noqa: S704 - every piece comes from escaped text
