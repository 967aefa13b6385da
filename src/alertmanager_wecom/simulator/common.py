"""What every endpoint family of the simulated WeCom shares: the reply shape and WeCom's error text,
the inbox entry, and `StateBase`, the state and helpers the families' mixins build on."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alertmanager_wecom.rendering.fit import (
    TEXTCARD_BTNTXT_CHARS,
    TEXTCARD_DESCRIPTION_LIMIT,
    TEXTCARD_TITLE_LIMIT,
    byte_len,
)
from alertmanager_wecom.simulator.model import SimApp, SimCorp, SimulatorSettings

Reply = dict[str, Any]
MORE_INFO = "more info at https://open.work.weixin.qq.com/devtool/query?e="
APP_MSGTYPES = {
    "text",
    "markdown",
    "textcard",
    "image",
    "voice",
    "video",
    "file",
    "news",
    "mpnews",
    "template_card",
    "miniprogram_notice",
}
ROBOT_MSGTYPES = {"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"}


def err(code: int, text: str, ip: str = "") -> Reply:
    hint = secrets.token_hex(4)
    where = f", from ip: {ip}" if ip else ""
    return {"errcode": code, "errmsg": f"{text}, hint: [{hint}]{where}, {MORE_INFO}{code}"}


def json_object(raw: bytes) -> dict[str, Any] | Reply:
    """A request body that must be a JSON object, or WeCom's answer when it is not (47001)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return err(47001, "data format error")
    if not isinstance(body, dict):
        return err(47001, "data format error")
    return body


def cut(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


@dataclass
class InboxEntry:
    id: int
    at: float
    recipient: str  # userid, or "robot:<name>" for a group robot's chat
    source: str  # "app:<agent_id>" or "robot:<name>"
    msgtype: str
    sent_bytes: int  # bytes of the main content as sent
    visible: str  # what the person sees, after WeCom's silent truncation
    truncated: bool = False
    dropped: str | None = None  # why WeCom dropped it silently, if it did
    mentioned: list[str] = field(default_factory=list)
    msgid: str = ""
    button: str = ""  # a textcard's button text, as WeCom shows it
    card: dict[str, Any] | None = None  # a template card, as last drawn (update_template_card redraws it)
    updates: int = 0  # how many times the card was redrawn
    image: str = ""  # an image message's media id (the picture: /admin/media/<id>)


@dataclass
class Token:
    corp: SimCorp
    app: SimApp
    expires_at: float


class StateBase:
    """The state every endpoint family reads (set up by `SimulatorState.reset`), and the helpers they
    share. Every handler runs under `_lock`."""

    settings: SimulatorSettings
    clock: Callable[[], float]
    _lock: threading.Lock
    tokens: dict[str, Token]
    calls: dict[str, int]
    errors: dict[str, int]
    issued_tokens: list[str]
    inbox: list[InboxEntry]
    chats: dict[str, dict[str, Any]]
    suppressed_duplicates: int
    _next_id: int
    trimmed: dict[str, int]  # recipient → their oldest messages no longer kept (inbox_per_recipient)
    _kept: dict[str, int]  # recipient → their messages in `inbox`

    def count(self, endpoint: str, errcode: int) -> None:
        self.calls[endpoint] += 1
        if errcode:
            self.errors[str(errcode)] = self.errors.get(str(errcode), 0) + 1

    def _auth(self, params: dict[str, str]) -> Token | Reply:
        raise NotImplementedError

    def _app_content(self, body: dict[str, Any]) -> tuple[str, str, bool, int] | Reply:
        """(msgtype, what a person sees, whether WeCom cut it, bytes sent), or the error WeCom answers."""
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or msgtype not in APP_MSGTYPES:
            return err(40008, "invalid message type")
        visible, truncated, sent_bytes, problem = self._visible_app(msgtype, body.get(msgtype))
        if problem is not None:
            return problem
        return msgtype, visible, truncated, sent_bytes

    def _visible_app(self, msgtype: str, part: Any) -> tuple[str, bool, int, Reply | None]:
        if not isinstance(part, dict):
            return "", False, 0, err(40058, f"{msgtype} is missing or not an object")
        if msgtype in ("text", "markdown"):
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return "", False, 0, err(44004, "empty content")
            visible, was_cut = cut(content, self.settings.content_limit_bytes)
            return visible, was_cut, byte_len(content), None
        if msgtype == "textcard":
            title, description, url = part.get("title"), part.get("description"), part.get("url")
            if not isinstance(title, str) or not isinstance(description, str) or not title or not description:
                return "", False, 0, err(44004, "empty title or description")
            if not isinstance(url, str) or not url:
                return "", False, 0, err(40058, "textcard.url is required")
            shown_title, cut_title = cut(title, TEXTCARD_TITLE_LIMIT)
            shown_description, cut_description = cut(description, TEXTCARD_DESCRIPTION_LIMIT)
            return (
                f"{shown_title}\n{shown_description}",
                cut_title or cut_description,
                byte_len(description),
                None,
            )
        return (
            json.dumps(part, ensure_ascii=False),
            False,
            byte_len(json.dumps(part, ensure_ascii=False)),
            None,
        )

    def _record(
        self,
        recipient: str,
        source: str,
        msgtype: str,
        sent_bytes: int,
        visible: str,
        truncated: bool,
        dropped: str | None,
        msgid: str,
        mentioned: list[str] | None = None,
        button: str = "",
        card: dict[str, Any] | None = None,
        image: str = "",
    ) -> None:
        self.inbox.append(
            InboxEntry(
                id=self._next_id,
                at=self.clock(),
                recipient=recipient,
                source=source,
                msgtype=msgtype,
                sent_bytes=sent_bytes,
                visible=visible,
                truncated=truncated,
                dropped=dropped,
                mentioned=mentioned or [],
                msgid=msgid,
                button=button,
                card=card,
                image=image,
            )
        )
        self._next_id += 1
        self._kept[recipient] = self._kept.get(recipient, 0) + 1
        if self._kept[recipient] > self.settings.inbox_per_recipient:
            self._forget_oldest(recipient)

    def _forget_oldest(self, recipient: str) -> None:
        """A long-running simulator (the sandbox, a storm benchmark) would otherwise keep every message
        ever sent: each person keeps their newest `inbox_per_recipient`, and the count of the rest."""
        for index, entry in enumerate(self.inbox):
            if entry.recipient == recipient:
                del self.inbox[index]
                self._kept[recipient] -= 1
                self.trimmed[recipient] = self.trimmed.get(recipient, 0) + 1
                return


def card_button(msgtype: str, body: dict[str, Any]) -> str:
    """The button a textcard shows: its btntxt, cut to 4 characters as WeCom does, else "详情"."""
    if msgtype != "textcard":
        return ""
    part = body.get("textcard")
    text = part.get("btntxt") if isinstance(part, dict) else None
    return text[:TEXTCARD_BTNTXT_CHARS] if isinstance(text, str) and text else "详情"
