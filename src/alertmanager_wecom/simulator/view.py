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
# A textcard's description: WeCom's three div classes; a div the 512-byte cut left open runs to the end.
_CARD_DIV = re.compile(r"&lt;div class=&quot;(gray|normal|highlight)&quot;&gt;(.*?)(?:&lt;/div&gt;|$)", re.S)
# A tag the cut split ("<div cla", "</di"): WeCom drops it, it is not text.
_CUT_TAG = re.compile(r"&lt;/?[a-z][^&]*(?:&quot;[^&]*)*(?:&quot;)?$")


def _inline(line: str) -> str:
    line = _FONT.sub(lambda m: f'<span style="color:{_COLORS[m.group(1)]}">{m.group(2)}</span>', line)
    line = _BOLD.sub(r"<b>\1</b>", line)
    line = _LINK.sub(r'<a href="\2" rel="noreferrer">\1</a>', line)
    return _MENTION.sub(r'<span class="mention">@\1</span>', line)


def render(msgtype: str, text: str, button: str = "") -> Markup:
    escaped = html.escape(text, quote=True)
    if msgtype == "text":
        linked = _TEXT_LINK.sub(r'<a href="\1" rel="noreferrer">\2</a>', escaped)
        return Markup(f'<div class="text">{linked}</div>')  # noqa: S704 - built from escaped text
    if msgtype == "textcard":
        return _textcard(escaped, button)
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


def _textcard(escaped: str, button: str) -> Markup:
    """Title, then the description with WeCom's div classes as grey, normal and highlighted lines (other
    markup stays text), then the button: as the card looks in the client, never raw tags."""
    title, _, description = escaped.partition("\n")
    description = _CUT_TAG.sub("", description)
    body = _CARD_DIV.sub(lambda m: f'<div class="card-{m.group(1)}">{m.group(2)}</div>', description)
    return Markup(  # noqa: S704 - built from escaped text
        f'<div class="card"><div class="card-title">{title}</div>'
        f'<div class="card-description">{body}</div>'
        f'<div class="card-button">{html.escape(button or "详情")} ›</div></div>'
    )
