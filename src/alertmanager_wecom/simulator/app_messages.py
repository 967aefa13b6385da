"""``message/send``: an app's message to members, parties and tags, with WeCom's silent truncation and
its per-member limits (what is over them is dropped without an error)."""

from __future__ import annotations

import copy
import hashlib
import secrets

from alertmanager_wecom.simulator.cards import TemplateCards, card_text
from alertmanager_wecom.simulator.common import Reply, card_button, err, json_object
from alertmanager_wecom.simulator.limits import SlidingWindows
from alertmanager_wecom.simulator.media import Media
from alertmanager_wecom.simulator.model import SimApp, SimCorp


class AppMessages(TemplateCards, Media):
    _member_sends: SlidingWindows
    _recent_bodies: dict[tuple[str, int], dict[str, float]]

    # -- message/send ---------------------------------------------------------------------------------

    def message_send(self, params: dict[str, str], body: bytes, ip: str) -> Reply:
        with self._lock:
            reply = self._message_send(params, body, ip)
            self.count("message/send", reply["errcode"])
            return reply

    def _message_send(self, params: dict[str, str], raw: bytes, ip: str) -> Reply:
        token = self._auth(params)
        if isinstance(token, dict):
            return token
        corp, app = token.corp, token.app
        if app.trusted_ips is not None and ip not in app.trusted_ips:
            return err(60020, "not allow to access from your ip", ip=ip)
        body = json_object(raw)
        if "errcode" in body:
            return body
        agent_id = body.get("agentid")
        if not isinstance(agent_id, int) and not (isinstance(agent_id, str) and agent_id.isdigit()):
            return err(40056, "invalid agentid")
        if not any(a.agent_id == int(agent_id) for a in corp.apps):
            return err(40056, "invalid agentid")
        if int(agent_id) != app.agent_id:
            return err(301002, "not allow operate another agent with this accesstoken.")
        content = self._app_content(body)
        if isinstance(content, dict):
            return content
        msgtype, visible, truncated, sent_bytes = content
        image = ""
        if msgtype == "image":
            shown = self.image_message(body.get("image"))
            if isinstance(shown, dict):
                return shown
            image, visible = shown
        card = body.get("template_card") if msgtype == "template_card" else None
        if msgtype == "template_card":
            problem = self.check_card(app.agent_id, card)
            if problem is not None:
                return problem
            assert isinstance(card, dict)
            visible = card_text(card)
        users = [u for u in str(body.get("touser", "") or "").split("|") if u]
        parties = [p for p in str(body.get("toparty", "") or "").split("|") if p]
        tags = [t for t in str(body.get("totag", "") or "").split("|") if t]
        if not (users or parties or tags):
            return err(82001, "All touser & toparty & totag invalid")
        if len(users) > 1000:
            return err(40032, "invalid size of userid list")
        if len(parties) > 100:
            return err(82002, "invalid partylist size")
        if len(tags) > 100:
            return err(82003, "invalid taglist size")
        recipients, invalid = self._resolve(corp, app, users, parties, tags)
        if not recipients:
            reply = err(81013, "user & party & tag all invalid")
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
            self._record(
                user,
                f"app:{app.agent_id}",
                msgtype,
                sent_bytes,
                visible,
                truncated,
                dropped,
                msgid,
                button=card_button(msgtype, body),
                card=copy.deepcopy(card) if isinstance(card, dict) else None,
                image=image,
            )
        if dropped_all and self.settings.member_limit_errcode:
            return err(self.settings.member_limit_errcode, "api freq out of limit")
        ok: Reply = {"errcode": 0, "errmsg": "ok", "msgid": msgid}
        if isinstance(card, dict):
            ok["response_code"] = self.card_sent(app.agent_id, card, recipients)
        ok.update({k: "|".join(v) for k, v in invalid.items() if v})
        return ok

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
        full = self._member_sends.take((corp_id, agent_id, user), self.clock())
        if full is None:
            return None
        return "member limit 1000/hour" if full == 0 else "member limit 30/minute"
