"""Template cards (``msgtype: template_card``) as WeCom treats them: checked when sent (card type,
task_id unique per app, buttons), interactive ones only for apps with a callback URL, a response code
with each send and each click (single use, 72 h), and ``message/update_template_card`` redrawing the
card for everyone who got it (``atall``) or for some userids; a used or old code is 60140."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from alertmanager_wecom.rendering.fit import byte_len
from alertmanager_wecom.simulator.common import Reply, StateBase, err, json_object

TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
CARD_TYPES = {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
INTERACTIVE = {"button_interaction", "vote_interaction", "multiple_interaction"}
CODE_LIFETIME = 72 * 3600.0


class TemplateCards(StateBase):
    callback_apps: set[int]
    card_tasks: dict[tuple[int, str], list[str]]  # (agent_id, task_id) → recipients
    card_codes: dict[str, tuple[int, str, float]]  # code → (agent_id, task_id, issued at); unused ones

    def check_card(self, agent_id: int, card: Any) -> Reply | None:
        """What WeCom answers to a card it refuses (None: accepted)."""
        if not isinstance(card, dict):
            return err(40058, "template_card is missing or not an object")
        card_type = card.get("card_type")
        if card_type not in CARD_TYPES:
            return err(40058, f"invalid card_type {card_type!r}")
        task_id = card.get("task_id")
        if card_type in INTERACTIVE or task_id is not None:
            if not isinstance(task_id, str) or not TASK_ID.match(task_id) or byte_len(task_id) > 128:
                return err(40058, "task_id: at most 128 bytes of 0-9 a-z A-Z _ - @")
            if (agent_id, task_id) in self.card_tasks:
                return err(40058, "task_id already used by this app (it must be unique)")
        if card_type in INTERACTIVE and agent_id not in self.callback_apps:
            return err(40058, "an interactive card needs the app's callback URL (接收消息) to be set")
        title = card.get("main_title")
        if not isinstance(title, dict) or not (title.get("title") or title.get("desc")):
            return err(40058, "main_title.title or main_title.desc is required")
        if card_type == "button_interaction":
            return self._check_buttons(card.get("button_list"))
        return None

    @staticmethod
    def _check_buttons(buttons: Any) -> Reply | None:
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            return err(40058, "button_list: 1 to 6 buttons")
        keys: set[str] = set()
        for button in buttons:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                return err(40058, "a button needs its text")
            if button.get("type", 0) == 1:
                if not isinstance(button.get("url"), str) or not button["url"]:
                    return err(40058, "a url button needs its url")
                continue
            key = button.get("key")
            if not isinstance(key, str) or not key or byte_len(key) > 1024:
                return err(40058, "a button's key: 1 to 1024 bytes")
            if key in keys:
                return err(40058, f"button key {key!r} is not unique")
            keys.add(key)
        return None

    def card_sent(self, agent_id: int, card: dict[str, Any], recipients: list[str]) -> str:
        """Remember the card's recipients; the response code of the send."""
        task_id = str(card.get("task_id") or "")
        if task_id:
            self.card_tasks[(agent_id, task_id)] = recipients
        return self.new_code(agent_id, task_id)

    def new_code(self, agent_id: int, task_id: str) -> str:
        code = secrets.token_urlsafe(24)
        self.card_codes[code] = (agent_id, task_id, self.clock())
        return code

    def press_problem(self, agent_id: int, task_id: str, userid: str, key: str) -> str | None:
        """Why the person cannot press that button of that card (None: they can): a click exists only
        for a card they got, on a button it shows now."""
        with self._lock:
            if userid not in self.card_tasks.get((agent_id, task_id), []):
                return f"{userid} has no card {task_id!r} of app {agent_id}"
            for entry in reversed(self.inbox):
                card = entry.card
                if card is None or entry.recipient != userid or card.get("task_id") != task_id:
                    continue
                if card.get("replaced"):
                    return "the card's buttons were replaced"
                keys = [b.get("key") for b in card.get("button_list") or [] if isinstance(b, dict)]
                return None if key in keys else f"the card shows no button {key!r} now"
            return f"{userid} has no card {task_id!r} of app {agent_id}"

    def click_code(self, agent_id: int, task_id: str) -> str:
        """Every click brings a new response code."""
        with self._lock:
            return self.new_code(agent_id, task_id)

    # -- message/update_template_card ---------------------------------------------------------------------

    def update_template_card(self, params: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            reply = self._update(params, raw)
            self.count("message/update_template_card", reply["errcode"])
            return reply

    def _update(self, params: dict[str, str], raw: bytes) -> Reply:
        token = self._auth(params)
        if isinstance(token, dict):
            return token
        body = json_object(raw)
        if "errcode" in body:
            return body
        if body.get("agentid") != token.app.agent_id:
            return err(301002, "not allow operate another agent with this accesstoken.")
        code = body.get("response_code")
        issued = self.card_codes.get(code) if isinstance(code, str) else None
        if issued is None or issued[0] != token.app.agent_id or self.clock() - issued[2] > CODE_LIFETIME:
            return err(60140, "invalid response_code")
        del self.card_codes[str(code)]  # single use
        agent_id, task_id, _ = issued
        recipients = self.card_tasks.get((agent_id, task_id), [])
        if body.get("atall") != 1:
            wanted = set(body.get("userids") or [])
            recipients = [r for r in recipients if r in wanted]
        button = body.get("button")
        card = body.get("template_card")
        if card is not None:
            if not isinstance(card, dict) or card.get("task_id", task_id) != task_id:
                return err(40058, "template_card.task_id must be the card's")
            problem = (
                self._check_buttons(card.get("button_list"))
                if card.get("card_type") == "button_interaction"
                else None
            )
            if problem is not None:
                return problem
        elif not isinstance(button, dict) or not isinstance(button.get("replace_name"), str):
            return err(40058, "update_template_card needs button.replace_name or template_card")
        for entry in self.inbox:
            if entry.card is None or entry.source != f"app:{agent_id}" or entry.recipient not in recipients:
                continue
            if entry.card.get("task_id") != task_id:
                continue
            if card is not None:
                entry.card = copy.deepcopy(card)
            else:
                assert isinstance(button, dict)
                entry.card = {**entry.card, "replaced": button["replace_name"]}
            entry.visible = card_text(entry.card)
            entry.updates += 1
        return {"errcode": 0, "errmsg": "ok", "invaliduser": []}


def card_text(card: dict[str, Any]) -> str:
    """A card as plain text (what the inbox JSON shows and tests read)."""
    lines = []
    title = card.get("main_title") or {}
    for key in ("title", "desc"):
        if isinstance(title, dict) and title.get(key):
            lines.append(str(title[key]))
    if card.get("sub_title_text"):
        lines.append(str(card["sub_title_text"]))
    for item in card.get("horizontal_content_list") or []:
        if isinstance(item, dict):
            lines.append(f"{item.get('keyname', '')}: {item.get('value', '')}")
    quote = card.get("quote_area") or {}
    if isinstance(quote, dict) and quote.get("quote_text"):
        lines.append(str(quote["quote_text"]))
    if card.get("replaced"):
        lines.append(f"[{card['replaced']}]")
    else:
        buttons = [b.get("text", "") for b in card.get("button_list") or [] if isinstance(b, dict)]
        if buttons:
            lines.append(" ".join(f"[{b}]" for b in buttons))
    return "\n".join(lines)
