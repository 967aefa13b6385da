"""How the WeCom client shows a message, for the simulator's inbox page: WeCom's markdown subset (headings,
bold, links, quotes, the three font colors) and text messages' <a href> links. Everything else stays text."""

from __future__ import annotations

import html
import re
from typing import Any

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


_BUTTON_STYLES = {1: "primary", 2: "default", 3: "warn", 4: "muted"}


def card(entry: dict[str, Any]) -> Markup:
    """A template card as the WeCom client draws it: source, title, facts, quote, buttons. A callback
    button posts the click as WeCom would (``/admin/click``); a URL button is a link."""
    data = entry.get("card") or {}
    esc = html.escape
    parts = ['<div class="tcard">']
    source = data.get("source") or {}
    if isinstance(source, dict) and source.get("desc"):
        parts.append(f'<div class="tcard-source">{esc(str(source["desc"]))}</div>')
    title = data.get("main_title") or {}
    if isinstance(title, dict):
        parts.append(f'<div class="card-title">{esc(str(title.get("title", "")))}</div>')
        if title.get("desc"):
            parts.append(f'<div class="card-gray">{esc(str(title["desc"]))}</div>')
    if data.get("sub_title_text"):
        parts.append(f'<div class="tcard-sub">{esc(str(data["sub_title_text"]))}</div>')
    for item in data.get("horizontal_content_list") or []:
        if isinstance(item, dict):
            parts.append(
                f'<div class="tcard-kv"><span class="card-gray">{esc(str(item.get("keyname", "")))}</span>'
                f"{esc(str(item.get('value', '')))}</div>"
            )
    quote = data.get("quote_area") or {}
    if isinstance(quote, dict) and quote.get("quote_text"):
        parts.append(f'<div class="quote tcard-quote">{esc(str(quote["quote_text"]))}</div>')
    parts.append('<div class="tcard-buttons">')
    if data.get("replaced"):
        parts.append(f'<button disabled class="muted">{esc(str(data["replaced"]))}</button>')
    else:
        agent = str(entry.get("source", "")).removeprefix("app:")
        for button in data.get("button_list") or []:
            if not isinstance(button, dict):
                continue
            text = esc(str(button.get("text", "")))
            if button.get("type") == 1:
                parts.append(
                    f'<a class="button" href="{esc(str(button.get("url", "")))}" rel="noreferrer">{text}</a>'
                )
                continue
            style = _BUTTON_STYLES.get(int(button.get("style", 1) or 1), "primary")
            parts.append(
                f'<button class="{style}" data-agent="{esc(agent)}" data-user="{esc(str(entry.get("recipient", "")))}" '
                f'data-key="{esc(str(button.get("key", "")))}" data-task="{esc(str(data.get("task_id", "")))}" '
                f'onclick="press(this)">{text}</button>'
            )
    parts.append("</div></div>")
    return Markup("".join(parts))  # noqa: S704 - every piece is escaped
