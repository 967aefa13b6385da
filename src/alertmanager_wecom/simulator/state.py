"""The simulated WeCom's behaviour, without HTTP: tokens, errcodes, truncation, limits, inboxes.

Every handler takes what WeCom would see (query parameters, body bytes, the caller's IP) and
returns what WeCom would answer.  Time comes from an injected clock so that token expiry and rate
windows are tested without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from alertmanager_wecom.rendering.fit import TEXTCARD_DESCRIPTION_LIMIT, TEXTCARD_TITLE_LIMIT, byte_len
from alertmanager_wecom.simulator.model import FaultKind, Faults, SimApp, SimCorp, SimulatorSettings

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


def _err(code: int, text: str, ip: str = "") -> Reply:
    hint = secrets.token_hex(4)
    where = f", from ip: {ip}" if ip else ""
    return {"errcode": code, "errmsg": f"{text}, hint: [{hint}]{where}, {MORE_INFO}{code}"}


def _cut(text: str, limit: int) -> tuple[str, bool]:
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


@dataclass
class _Token:
    corp: SimCorp
    app: SimApp
    expires_at: float


class SimulatorState:
    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._random = random.Random(settings.faults.seed)
        self.reset()

    # -- admin ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.tokens: dict[str, _Token] = {}
            self.issued_tokens: list[str] = []  # every token ever handed out, for leak tests
            self.inbox: list[InboxEntry] = []
            self.suppressed_duplicates = 0
            self.calls: dict[str, int] = defaultdict(int)
            self.errors: dict[str, int] = defaultdict(int)
            self.faults_injected: dict[str, int] = {}
            self._member_sends: dict[tuple[str, int, str], deque[float]] = defaultdict(deque)
            self._robot_sends: dict[str, deque[float]] = defaultdict(deque)
            self._chat_sends: dict[str, deque[float]] = defaultdict(deque)
            self.chats: dict[str, dict[str, Any]] = {}
            self._recent_bodies: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
            self._next_id = 1

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self.tokens)
            self.tokens.clear()
            return count

    def set_faults(self, faults: Faults) -> None:
        self.settings = self.settings.model_copy(update={"faults": faults})
        self._random = random.Random(faults.seed)

    def set_trusted_ips(self, agent_id: int, ips: list[str] | None) -> bool:
        for corp in self.settings.corps:
            for app in corp.apps:
                if app.agent_id == agent_id:
                    app.trusted_ips = ips
                    return True
        return False

    def pick_fault(self) -> FaultKind | None:
        faults = self.settings.faults
        if faults.rate <= 0 or not faults.kinds:
            return None
        with self._lock:
            if self._random.random() >= faults.rate:
                return None
            kind = self._random.choice(faults.kinds)
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
            return kind

    def stats(self) -> dict[str, Any]:
        with self._lock:
            visible = [e for e in self.inbox if e.dropped is None]
            return {
                "calls": dict(self.calls),
                "errors": dict(self.errors),
                "faults_injected": dict(self.faults_injected),
                "messages": len(self.inbox),
                "delivered": len(visible),
                "dropped": len(self.inbox) - len(visible),
                "truncated": sum(1 for e in visible if e.truncated),
                "suppressed_duplicates": self.suppressed_duplicates,
                "active_tokens": len(self.tokens),
            }

    def entries(self, recipient: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self.inbox if recipient is None or e.recipient == recipient]

    def count(self, endpoint: str, errcode: int) -> None:
        self.calls[endpoint] += 1
        if errcode:
            self.errors[str(errcode)] = self.errors.get(str(errcode), 0) + 1

    # -- gettoken -------------------------------------------------------------------------------------

    def gettoken(self, params: dict[str, str]) -> Reply:
        with self._lock:
            reply = self._gettoken(params)
            self.count("gettoken", reply["errcode"])
            return reply

    def _gettoken(self, params: dict[str, str]) -> Reply:
        corp = self._corp(params.get("corpid", ""))
        if corp is None:
            return _err(40013, "invalid corpid")
        secret = params.get("corpsecret", "")
        app = next((a for a in corp.apps if secrets.compare_digest(a.secret, secret)), None)
        if app is None:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        now = self.clock()
        for value, token in self.tokens.items():
            if token.app is app and token.expires_at > now:
                return {
                    "errcode": 0,
                    "errmsg": "ok",
                    "access_token": value,
                    "expires_in": int(token.expires_at - now),
                }
        value = secrets.token_urlsafe(48)
        self.tokens[value] = _Token(corp, app, now + self.settings.token_ttl_seconds)
        self.issued_tokens.append(value)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "access_token": value,
            "expires_in": self.settings.token_ttl_seconds,
        }

    # -- message/send ---------------------------------------------------------------------------------

    def message_send(self, params: dict[str, str], body: bytes, ip: str) -> Reply:
        with self._lock:
            reply = self._message_send(params, body, ip)
            self.count("message/send", reply["errcode"])
            return reply

    def _auth(self, params: dict[str, str]) -> _Token | Reply:
        value = params.get("access_token")
        if not value:
            return _err(41001, "access_token missing")
        token = self.tokens.get(value)
        if token is None:
            return _err(40014, "invalid access_token")
        if token.expires_at <= self.clock():
            del self.tokens[value]
            return _err(42001, "access_token expired")
        return token

    def _message_send(self, params: dict[str, str], raw: bytes, ip: str) -> Reply:
        token = self._auth(params)
        if isinstance(token, dict):
            return token
        corp, app = token.corp, token.app
        if app.trusted_ips is not None and ip not in app.trusted_ips:
            return _err(60020, "not allow to access from your ip", ip=ip)
        try:
            body = json.loads(raw)
        except ValueError:
            return _err(47001, "data format error")
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        agent_id = body.get("agentid")
        if not isinstance(agent_id, int) and not (isinstance(agent_id, str) and agent_id.isdigit()):
            return _err(40056, "invalid agentid")
        if not any(a.agent_id == int(agent_id) for a in corp.apps):
            return _err(40056, "invalid agentid")
        if int(agent_id) != app.agent_id:
            return _err(301002, "not allow operate another agent with this accesstoken.")
        content = self._app_content(body)
        if isinstance(content, dict):
            return content
        msgtype, visible, truncated, sent_bytes = content
        users = [u for u in str(body.get("touser", "") or "").split("|") if u]
        parties = [p for p in str(body.get("toparty", "") or "").split("|") if p]
        tags = [t for t in str(body.get("totag", "") or "").split("|") if t]
        if not (users or parties or tags):
            return _err(82001, "All touser & toparty & totag invalid")
        if len(users) > 1000:
            return _err(40032, "invalid size of userid list")
        if len(parties) > 100:
            return _err(82002, "invalid partylist size")
        if len(tags) > 100:
            return _err(82003, "invalid taglist size")
        recipients, invalid = self._resolve(corp, app, users, parties, tags)
        if not recipients:
            reply = _err(81013, "user & party & tag all invalid")
            reply.update({k: "|".join(v) for k, v in invalid.items() if v})
            return reply
        if body.get("enable_duplicate_check"):
            interval = int(body.get("duplicate_check_interval") or 1800)
            digest = hashlib.sha256(raw).hexdigest()
            seen = self._recent_bodies[(corp.corp_id, app.agent_id)]
            now = self.clock()
            if now - seen.get(digest, -1e18) < interval:
                self.suppressed_duplicates += 1
                return {"errcode": 0, "errmsg": "ok", "msgid": secrets.token_urlsafe(24)}
            seen[digest] = now
        msgid = secrets.token_urlsafe(24)
        dropped_all = True
        for user in recipients:
            dropped = self._member_limit(corp.corp_id, app.agent_id, user)
            dropped_all = dropped_all and dropped is not None
            self._record(user, f"app:{app.agent_id}", msgtype, sent_bytes, visible, truncated, dropped, msgid)
        if dropped_all and self.settings.member_limit_errcode:
            return _err(self.settings.member_limit_errcode, "api freq out of limit")
        ok: Reply = {"errcode": 0, "errmsg": "ok", "msgid": msgid}
        ok.update({k: "|".join(v) for k, v in invalid.items() if v})
        return ok

    def _app_content(self, body: dict[str, Any]) -> tuple[str, str, bool, int] | Reply:
        """(msgtype, what a person sees, whether WeCom cut it, bytes sent), or the error WeCom answers."""
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or msgtype not in APP_MSGTYPES:
            return _err(40008, "invalid message type")
        visible, truncated, sent_bytes, problem = self._visible_app(msgtype, body.get(msgtype))
        if problem is not None:
            return problem
        return msgtype, visible, truncated, sent_bytes

    def _visible_app(self, msgtype: str, part: Any) -> tuple[str, bool, int, Reply | None]:
        if not isinstance(part, dict):
            return "", False, 0, _err(40058, f"{msgtype} is missing or not an object")
        if msgtype in ("text", "markdown"):
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return "", False, 0, _err(44004, "empty content")
            visible, cut = _cut(content, self.settings.content_limit_bytes)
            return visible, cut, byte_len(content), None
        if msgtype == "textcard":
            title, description, url = part.get("title"), part.get("description"), part.get("url")
            if not isinstance(title, str) or not isinstance(description, str) or not title or not description:
                return "", False, 0, _err(44004, "empty title or description")
            if not isinstance(url, str) or not url:
                return "", False, 0, _err(40058, "textcard.url is required")
            shown_title, cut_title = _cut(title, TEXTCARD_TITLE_LIMIT)
            shown_description, cut_description = _cut(description, TEXTCARD_DESCRIPTION_LIMIT)
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

    def _resolve(
        self, corp: SimCorp, app: SimApp, users: list[str], parties: list[str], tags: list[str]
    ) -> tuple[list[str], dict[str, list[str]]]:
        visible = set(corp.users) if "@all" in app.visible else set(app.visible) & set(corp.users)
        recipients: list[str] = []
        invalid: dict[str, list[str]] = {"invaliduser": [], "invalidparty": [], "invalidtag": []}
        for user in users:
            if user == "@all":
                recipients.extend(u for u in corp.users if u in visible)
            elif user in visible:
                recipients.append(user)
            else:
                invalid["invaliduser"].append(user)
        for key, groups, ids in (("invalidparty", corp.parties, parties), ("invalidtag", corp.tags, tags)):
            for group in ids:
                members = [u for u in groups.get(group, []) if u in visible]
                if members:
                    recipients.extend(members)
                else:
                    invalid[key].append(group)
        return list(dict.fromkeys(recipients)), invalid

    def _member_limit(self, corp_id: str, agent_id: int, user: str) -> str | None:
        """WeCom drops what is over 30/min or 1000/h per member per app, and says nothing."""
        now = self.clock()
        sends = self._member_sends[(corp_id, agent_id, user)]
        while sends and now - sends[0] >= 3600:
            sends.popleft()
        if len(sends) >= self.settings.member_per_hour:
            return "member limit 1000/hour"
        if sum(1 for t in sends if now - t < 60) >= self.settings.member_per_minute:
            return "member limit 30/minute"
        sends.append(now)
        return None

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
            )
        )
        self._next_id += 1

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
            return _err(93000, "invalid webhook url")
        try:
            body = json.loads(raw)
        except ValueError:
            return _err(40058, "invalid json")
        if not isinstance(body, dict) or body.get("msgtype") not in ROBOT_MSGTYPES:
            return _err(40008, "invalid message type")
        msgtype = body["msgtype"]
        part = body.get(msgtype)
        if not isinstance(part, dict):
            return _err(40058, f"{msgtype} is missing")
        mentioned: list[str] = []
        if msgtype in ("text", "markdown", "markdown_v2"):
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return _err(44004, "empty content")
            limit = (
                self.settings.content_limit_bytes
                if msgtype == "text"
                else self.settings.robot_markdown_limit_bytes
            )
            if byte_len(content) > limit:
                return _err(40058, f"content exceed max length {limit}")
            if msgtype == "text":
                mentioned = [str(m) for m in (part.get("mentioned_list") or [])]
                mentioned += [f"mobile:{m}" for m in (part.get("mentioned_mobile_list") or [])]
            elif msgtype == "markdown":
                mentioned = re.findall(r"<@([^>]+)>", content)
            visible = content
        else:
            visible = json.dumps(part, ensure_ascii=False)
        now = self.clock()
        sends = self._robot_sends[name]
        while sends and now - sends[0] >= 60:
            sends.popleft()
        if len(sends) >= self.settings.robot_per_minute:
            return _err(45009, "api freq out of limit")
        sends.append(now)
        self._record(
            f"robot:{name}", f"robot:{name}", msgtype, byte_len(visible), visible, False, None, "", mentioned
        )
        return {"errcode": 0, "errmsg": "ok"}

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
                return _err(86003, "chat not found")
            return {"errcode": 0, "errmsg": "ok", "chat_info": {k: v for k, v in chat.items() if k != "corp"}}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _err(47001, "data format error")
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        if action == "create":
            users = body.get("userlist")
            if not isinstance(users, list) or len(users) < 2:
                return _err(40058, "userlist needs at least 2 members")
            unknown = [u for u in users if u not in token.corp.users]
            if unknown:
                return _err(60111, f"userid not found: {'|'.join(map(str, unknown))}")
            chatid = str(body.get("chatid") or secrets.token_hex(8))
            if chatid in self.chats:
                return _err(86215, "chat already exists")
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
            return _err(40058, "unknown appchat action")
        chat = self.chats.get(str(body.get("chatid", "")))
        if chat is None or chat["corp"] != token.corp.corp_id:
            return _err(86003, "chat not found")
        content = self._app_content(body)
        if isinstance(content, dict):
            return content
        msgtype, visible, truncated, sent_bytes = content
        now = self.clock()
        sends = self._chat_sends[chat["chatid"]]
        while sends and now - sends[0] >= 60:
            sends.popleft()
        dropped = "chat limit 200/minute" if len(sends) >= 200 else None
        if dropped is None:
            sends.append(now)
        self._record(
            f"chat:{chat['chatid']}",
            f"app:{token.app.agent_id}",
            msgtype,
            sent_bytes,
            visible,
            truncated,
            dropped,
            "",
        )
        return {"errcode": 0, "errmsg": "ok"}

    # -- media/upload ---------------------------------------------------------------------------------

    def media_upload(self, params: dict[str, str], media_type: str, size: int | None) -> Reply:
        with self._lock:
            token = self._auth(params)
            if isinstance(token, dict):
                reply = token
            elif media_type not in ("image", "voice", "video", "file"):
                reply = _err(40004, "invalid media type")
            elif size is None:
                reply = _err(41005, "media data missing")
            elif size <= 5:
                reply = _err(40005, "invalid file type")
            elif size > 20 * 1024 * 1024:
                reply = _err(40006, "invalid file size")
            else:
                reply = {
                    "errcode": 0,
                    "errmsg": "",
                    "type": media_type,
                    "media_id": secrets.token_urlsafe(40),
                    "created_at": str(int(self.clock())),
                }
            self.count("media/upload", reply["errcode"])
            return reply

    def _corp(self, corp_id: str) -> SimCorp | None:
        return next((c for c in self.settings.corps if c.corp_id == corp_id), None)
