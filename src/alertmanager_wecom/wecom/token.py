"""The access token of one app: cached, refreshed before it expires, one refresh at a time.

However many sends run at once, only one gettoken call is in flight; the others wait for its
result.  `invalidate` takes the token that failed, so that a send that raced a refresh does not
throw away the fresh token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.secret import Secret
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.errcodes import Action

# Refresh this long before expiry (capped at a tenth of the lifetime for short-lived test tokens).
REFRESH_MARGIN_SECONDS = 300.0


class AccessToken:
    def __init__(
        self, api: WeComAPI, corp_id: str, secret: Secret, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.corp_id = corp_id
        self.secret = secret
        self.clock = clock
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.on_refresh: Callable[[], None] | None = None  # metrics

    async def get(self) -> str:
        token = self._valid()
        if token is not None:
            return token
        async with self._lock:
            token = self._valid()
            if token is not None:
                return token
            reply = await self.api.call(
                "GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret.reveal()}
            )
            value = str(reply.get("access_token", ""))
            expires_in = float(reply.get("expires_in", 7200))
            self._token = Secret(value)
            self._refresh_at = self.clock() + expires_in - min(REFRESH_MARGIN_SECONDS, expires_in / 10)
            if self.on_refresh is not None:
                self.on_refresh()
            return value

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """Call a WeCom API with this app's token; on 40014/41001/42001 (the token went stale early:
        revoked, or expired on WeCom's clock) fetch a new one and call once more."""
        for attempt in (1, 2):
            token = await self.get()
            try:
                return await self.api.call(
                    method, path, params={**(params or {}), "access_token": token}, body=body, files=files
                )
            except WeComError as exc:
                if exc.action is Action.REFRESH_TOKEN and attempt == 1:
                    self.invalidate(token)
                    continue
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def invalidate(self, token: str) -> None:
        if self._token is not None and self._token.reveal() == token:
            self._token = None

    def _valid(self) -> str | None:
        if self._token is not None and self.clock() < self._refresh_at:
            return self._token.reveal()
        return None
