"""Alertmanager's silences API v2: create a silence, expire it. Errors say what went wrong in words a
person reading the card understands, and never carry the API's credentials."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import httpx

from alertmanager_wecom.config.apis import AlertmanagerAPI
from alertmanager_wecom.outbound import api_client


class AlertmanagerError(Exception):
    """A silence could not be made or expired; the message is short enough for a card."""


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str

    def api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": False, "isEqual": True}

    def filter(self) -> str:
        """As API v2's ``filter`` parameter takes it: ``name="value"``, the value quoted with escapes
        (alert data: quotes and backslashes are content), the name too unless a classic label name."""
        name = self.name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name) else _quoted(self.name)
        return f"{name}={_quoted(self.value)}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerClient:
    def __init__(self, api: AlertmanagerAPI) -> None:
        self.base = api.url.rstrip("/")
        self._client = api_client(api)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        try:
            answer = await self._client.request(
                method, f"{self.base}/api/v2/{path}", json=body, params=tuple(params or ())
            )
        except httpx.TimeoutException:
            raise AlertmanagerError("Alertmanager did not answer in time") from None
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"Alertmanager unreachable ({type(exc).__name__})") from None
        if answer.status_code in (401, 403):
            raise AlertmanagerError(f"Alertmanager refused our credentials (HTTP {answer.status_code})")
        return answer

    async def create_silence(
        self, matchers: list[Matcher], starts: float, ends: float, created_by: str, comment: str
    ) -> str:
        if not matchers:
            raise AlertmanagerError("nothing to match: the notification has no labels")
        body = {
            "matchers": [m.api() for m in matchers],
            "startsAt": _iso(starts),
            "endsAt": _iso(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._call("POST", "silences", body)
        if answer.status_code != 200:
            text = " ".join(answer.text.split())[:120]
            raise AlertmanagerError(f"Alertmanager answered HTTP {answer.status_code}: {text}")
        try:
            silence_id = answer.json()["silenceID"]
        except (ValueError, KeyError, TypeError):
            raise AlertmanagerError("Alertmanager's answer has no silenceID") from None
        return str(silence_id)

    async def matched_fingerprints(self, matchers: list[Matcher]) -> set[str]:
        """The fingerprints of the alerts Alertmanager has now (firing, silenced or inhibited) that
        `matchers` match: what a silence with them would silence today."""
        answer = await self._call("GET", "alerts", params=[("filter", m.filter()) for m in matchers])
        if answer.status_code != 200:
            raise AlertmanagerError(f"Alertmanager answered HTTP {answer.status_code} listing alerts")
        try:
            return {str(alert["fingerprint"]) for alert in answer.json()}
        except (ValueError, KeyError, TypeError):
            raise AlertmanagerError("Alertmanager's list of alerts is not what API v2 gives") from None

    async def expire_silence(self, silence_id: str) -> None:
        answer = await self._call("DELETE", f"silence/{silence_id}")
        if answer.status_code == 404:
            return  # already gone (expired, or removed by someone else): the wanted outcome
        if answer.status_code != 200:
            raise AlertmanagerError(f"Alertmanager answered HTTP {answer.status_code} when expiring")
