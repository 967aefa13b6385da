"""``appchat/create|get|send``: an app's group chats (群聊会话), and their limit of 200 messages a
minute per chat (what is over it is dropped without an error)."""

from __future__ import annotations

import json
import secrets

from alertmanager_wecom.simulator.common import Reply, StateBase, card_button, err
from alertmanager_wecom.simulator.limits import SlidingWindows


class AppChats(StateBase):
    _chat_sends: SlidingWindows

    # -- appchat (群聊会话) ------------------------------------------------------------------------------

    def appchat(self, action: str, params: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            reply = self._appchat(action, params, raw)
            self.count(f"appchat/{action}", reply["errcode"])
            return reply

    def _appchat(self, action: str, params: dict[str, str], raw: bytes) -> Reply:
        token = self._auth(params)
        if isinstance(token, dict):
            return token
        if action == "get":
            chat = self.chats.get(params.get("chatid", ""))
            if chat is None or chat["corp"] != token.corp.corp_id:
                return err(86003, "chat not found")
            return {"errcode": 0, "errmsg": "ok", "chat_info": {k: v for k, v in chat.items() if k != "corp"}}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return err(47001, "data format error")
        if not isinstance(body, dict):
            return err(47001, "data format error")
        if action == "create":
            users = body.get("userlist")
            if not isinstance(users, list) or len(users) < 2:
                return err(40058, "userlist needs at least 2 members")
            unknown = [u for u in users if u not in token.corp.users]
            if unknown:
                return err(60111, f"userid not found: {'|'.join(map(str, unknown))}")
            chatid = str(body.get("chatid") or secrets.token_hex(8))
            if chatid in self.chats:
                return err(86215, "chat already exists")
            owner = str(body.get("owner") or users[0])
            self.chats[chatid] = {
                "corp": token.corp.corp_id,
                "chatid": chatid,
                "name": str(body.get("name", "")),
                "owner": owner,
                "userlist": [str(u) for u in users],
            }
            return {"errcode": 0, "errmsg": "ok", "chatid": chatid}
        if action != "send":
            return err(40058, "unknown appchat action")
        chat = self.chats.get(str(body.get("chatid", "")))
        if chat is None or chat["corp"] != token.corp.corp_id:
            return err(86003, "chat not found")
        content = self._app_content(body)
        if isinstance(content, dict):
            return content
        msgtype, visible, truncated, sent_bytes = content
        full = self._chat_sends.take(chat["chatid"], self.clock())
        dropped = "chat limit 200/minute" if full is not None else None
        self._record(
            f"chat:{chat['chatid']}",
            f"app:{token.app.agent_id}",
            msgtype,
            sent_bytes,
            visible,
            truncated,
            dropped,
            "",
            button=card_button(msgtype, body),
        )
        return {"errcode": 0, "errmsg": "ok"}
