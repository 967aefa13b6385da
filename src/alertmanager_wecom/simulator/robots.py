"""``webhook/send``: a group robot's message (the key is its only credential), with its limits: the
content's bytes (an error, not a cut) and 20 messages a minute."""

from __future__ import annotations

import json
import re
import secrets

from alertmanager_wecom.rendering.fit import byte_len
from alertmanager_wecom.simulator.common import ROBOT_MSGTYPES, Reply, err
from alertmanager_wecom.simulator.limits import SlidingWindows
from alertmanager_wecom.simulator.media import Media


class Robots(Media):
    _robot_sends: SlidingWindows

    # -- webhook/send (group robot) -------------------------------------------------------------------

    def robot_send(self, params: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            reply = self._robot_send(params, raw)
            self.count("webhook/send", reply["errcode"])
            return reply

    def _robot_send(self, params: dict[str, str], raw: bytes) -> Reply:
        key = params.get("key", "")
        name = next((n for n, k in self.settings.robots.items() if secrets.compare_digest(k, key)), None)
        if name is None:
            return err(93000, "invalid webhook url")
        try:
            body = json.loads(raw)
        except ValueError:
            return err(40058, "invalid json")
        if not isinstance(body, dict) or body.get("msgtype") not in ROBOT_MSGTYPES:
            return err(40008, "invalid message type")
        msgtype = body["msgtype"]
        part = body.get(msgtype)
        if not isinstance(part, dict):
            return err(40058, f"{msgtype} is missing")
        mentioned: list[str] = []
        image = ""
        if msgtype == "image":
            shown = self.robot_image(part)
            if isinstance(shown, dict):
                return shown
            image, visible = shown
        elif msgtype in ("text", "markdown", "markdown_v2"):
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return err(44004, "empty content")
            limit = (
                self.settings.content_limit_bytes
                if msgtype == "text"
                else self.settings.robot_markdown_limit_bytes
            )
            if byte_len(content) > limit:
                return err(40058, f"content exceed max length {limit}")
            if msgtype == "text":
                mentioned = [str(m) for m in (part.get("mentioned_list") or [])]
                mentioned += [f"mobile:{m}" for m in (part.get("mentioned_mobile_list") or [])]
            elif msgtype == "markdown":
                mentioned = re.findall(r"<@([^>]+)>", content)
            visible = content
        else:
            visible = json.dumps(part, ensure_ascii=False)
        if self._robot_sends.take(name, self.clock()) is not None:
            return err(45009, "api freq out of limit")
        self._record(
            f"robot:{name}",
            f"robot:{name}",
            msgtype,
            byte_len(visible),
            visible,
            False,
            None,
            "",
            mentioned,
            image=image,
        )
        return {"errcode": 0, "errmsg": "ok"}
