"""``gettoken`` and the access token every other app endpoint checks; ``media/upload``."""

from __future__ import annotations

import secrets

from alertmanager_wecom.simulator.common import Reply, Token, err
from alertmanager_wecom.simulator.media import Media, image_type
from alertmanager_wecom.simulator.model import SimCorp


class Access(Media):
    # -- gettoken -------------------------------------------------------------------------------------

    def gettoken(self, params: dict[str, str]) -> Reply:
        with self._lock:
            reply = self._gettoken(params)
            self.count("gettoken", reply["errcode"])
            return reply

    def _gettoken(self, params: dict[str, str]) -> Reply:
        corp = self._corp(params.get("corpid", ""))
        if corp is None:
            return err(40013, "invalid corpid")
        secret = params.get("corpsecret", "")
        app = next((a for a in corp.apps if secrets.compare_digest(a.secret, secret)), None)
        if app is None:
            return err(40001, "invalid credential, access_token is invalid or not latest")
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
        self.tokens[value] = Token(corp, app, now + self.settings.token_ttl_seconds)
        self.issued_tokens.append(value)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "access_token": value,
            "expires_in": self.settings.token_ttl_seconds,
        }

    def _auth(self, params: dict[str, str]) -> Token | Reply:
        value = params.get("access_token")
        if not value:
            return err(41001, "access_token missing")
        token = self.tokens.get(value)
        if token is None:
            return err(40014, "invalid access_token")
        if token.expires_at <= self.clock():
            del self.tokens[value]
            return err(42001, "access_token expired")
        return token

    # -- media/upload ---------------------------------------------------------------------------------

    def media_upload(self, params: dict[str, str], media_type: str, data: bytes | None) -> Reply:
        with self._lock:
            token = self._auth(params)
            if isinstance(token, dict):
                reply = token
            elif media_type not in ("image", "voice", "video", "file"):
                reply = err(40004, "invalid media type")
            elif data is None:
                reply = err(41005, "media data missing")
            elif len(data) <= 5:
                reply = err(40005, "invalid file type")
            elif len(data) > 20 * 1024 * 1024:
                reply = err(40006, "invalid file size")
            elif media_type == "image" and (problem := self.image_problem(data)) is not None:
                reply = problem
            else:
                content_type = (
                    (image_type(data) or "image/png") if media_type == "image" else "application/octet-stream"
                )
                reply = {
                    "errcode": 0,
                    "errmsg": "",
                    "type": media_type,
                    "media_id": self.keep_media(data, content_type),
                    "created_at": str(int(self.clock())),
                }
            self.count("media/upload", reply["errcode"])
            return reply

    def _corp(self, corp_id: str) -> SimCorp | None:
        return next((c for c in self.settings.corps if c.corp_id == corp_id), None)
