"""``user/getuserid`` (doc 95402) and ``user/get_userid_by_email`` (doc 95895): a member's userid from
their mobile number or email, as WeCom answers them.

Only that way round: since 2022-06 new apps cannot read a member's mobile or email (user/get), so the
simulator keeps them for these look-ups alone. What is counted (`lookups`, `errors`) lets tests see
that a cached answer made no call.
"""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.simulator.common import Reply, StateBase, err, json_object
from alertmanager_wecom.simulator.model import SimApp, SimCorp

# The endpoint, the body's field, and what the directory keeps under that name.
ENDPOINTS = {"user/getuserid": "mobile", "user/get_userid_by_email": "email"}


class Directory(StateBase):
    def lookup_userid(self, endpoint: str, params: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            reply = self._lookup(endpoint, params, raw)
            self.count(endpoint, reply["errcode"])
            return reply

    def _lookup(self, endpoint: str, params: dict[str, str], raw: bytes) -> Reply:
        field = ENDPOINTS[endpoint]
        token = self._auth(params)
        if isinstance(token, dict):
            return token
        corp, app = token.corp, token.app
        if not app.contacts:
            # The app was not given the directory (通讯录) read permission.
            return err(60011, "no privilege to access/modify contact/party/agent")
        body = json_object(raw)
        if "errcode" in body:
            return body
        value = body.get(field)
        problem = self._bad_value(field, value, body)
        if problem is not None:
            return problem
        userid = self._member(corp, app, field, str(value))
        if userid is None:
            return err(46004, "user no exist")
        return {"errcode": 0, "errmsg": "ok", "userid": userid}

    @staticmethod
    def _bad_value(field: str, value: Any, body: dict[str, Any]) -> Reply | None:
        if not isinstance(value, str) or not value:
            return err(40058, f"{field} is required")
        if field == "mobile" and not 5 <= len(value.encode()) <= 32:
            return err(40058, "invalid mobile")
        if field == "email":
            if body.get("email_type", 1) not in (1, 2):
                return err(40058, "invalid email_type")
            if "@" not in value:
                return err(40058, "invalid email")
        return None

    @staticmethod
    def _member(corp: SimCorp, app: SimApp, field: str, value: str) -> str | None:
        """The member with this mobile/email whom the app may see (its visible range); a member outside
        it is answered as not existing (WeCom's answer there is unconfirmed)."""
        visible = set(corp.users) if "@all" in app.visible else set(app.visible) & set(corp.users)
        for userid, contact in corp.contacts.items():
            known = contact.email if field == "email" else contact.mobile
            if userid in visible and known is not None:
                same = known.lower() == value.lower() if field == "email" else known == value
                if same:
                    return userid
        return None
