"""Incidents over HTTP: their timelines (`GET /api/incidents`), acknowledging one (`POST /api/ack`, admin),
and the signed acknowledge links of text and markdown messages (``/ack/<token>``: a page, then a POST).

Opening a link never acknowledges by itself (a chat app or a mail scanner may fetch it ahead of the
person): the page shows the incident and a button, and only that button's POST acknowledges. A digest's
link (many groups, in a storm) shows each group's incident and acknowledges every one still open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.actions.acknowledge import AckResult
from alertmanager_wecom.ingest.payload import parse_notification
from alertmanager_wecom.oncall.ack_link import BadLink, digest_job, verify
from alertmanager_wecom.oncall.store import Incident, group_id
from alertmanager_wecom.web.admin import Admin, Endpoint
from alertmanager_wecom.web.answers import (
    BodyTooLarge,
    BodyTooSlow,
    error,
    paging_offset,
    read_body,
    store_guarded,
)
from alertmanager_wecom.web.relay import Relay

# Who acknowledged, as typed on the link's page or sent to the API: a name a person reads, one line.
_WHO = re.compile(r"^[^\x00-\x1f\x7f<>&\"'`]{1,64}$")
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_WORDS = {
    "zh": {
        "title": "认领告警",
        "button": "认领",
        "who": "你的名字（可选）",
        "acknowledged": "已认领：升级已停止。",
        "already": "已由 {who} 认领。",
        "resolved": "告警已恢复，无需认领。",
        "unknown": "找不到这条告警（可能早已恢复）。",
        "refused": "链接无效",
        "started": "开始于",
        "button_all": "认领全部 %d 组",
        "digest_gone": "这条汇总消息已不再保存（超过 storage.retention）：请在控制台认领。",
    },
    "en": {
        "title": "Acknowledge alert",
        "button": "Acknowledge",
        "who": "Your name (optional)",
        "acknowledged": "Acknowledged: escalation stopped.",
        "already": "Already acknowledged by {who}.",
        "resolved": "The alert has resolved: nothing to acknowledge.",
        "unknown": "No such alert (it may have resolved long ago).",
        "refused": "This link does not work",
        "started": "started",
        "button_all": "Acknowledge all %d groups",
        "digest_gone": "This digest is no longer kept (past storage.retention): acknowledge from the console.",
    },
}


def incident_json(incident: Incident) -> dict[str, Any]:
    out = dataclasses.asdict(incident)
    out["open"] = incident.open
    out["stop_reason"] = incident.stop_reason()
    return out


class Incidents:
    def __init__(self, relay: Relay, admin: Admin) -> None:
        self.relay = relay
        self.admin = admin

    def routes(self) -> list[BaseRoute]:
        def guarded(endpoint: Endpoint, changes: bool) -> Endpoint:
            return self.admin.guarded(store_guarded(endpoint), changes)

        return [
            Route("/api/incidents", guarded(self.list, changes=False), methods=["GET"]),
            Route("/api/incidents/{id}", guarded(self.one, changes=False), methods=["GET"]),
            Route("/api/ack", guarded(self.ack_api, changes=True), methods=["POST"]),
            Route("/ack/{token}", store_guarded(self.ack_page), methods=["GET", "POST"]),
        ]

    async def list(self, request: Request) -> Response:
        store = self.relay.oncall
        if store is None:
            return error(503, "the on-call store is not open")
        raw = request.query_params.get("limit", "100")
        if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 6 and int(raw) > 0):
            return error(400, "limit is a whole number from 1 (at most 1000 incidents are listed)")
        offset = paging_offset(request)
        if offset is None:
            return error(400, "offset is a whole number from 0: how many of the newest to skip (paging)")
        open_only = request.query_params.get("open", "") in ("1", "true")
        limit = min(1000, int(raw))
        found = await store.incidents(limit, open_only=open_only, offset=offset)
        # A full page may have more behind it: the offset that reads the next one.
        more = offset + len(found) if len(found) == limit else None
        return JSONResponse({"incidents": [incident_json(i) for i in found], "next_offset": more})

    async def one(self, request: Request) -> Response:
        store = self.relay.oncall
        if store is None:
            return error(503, "the on-call store is not open")
        incident = await store.incident(request.path_params["id"][:64])
        if incident is None:
            return error(404, "no such incident")
        return JSONResponse(incident_json(incident))

    async def ack_api(self, request: Request) -> Response:
        """``{"incident": ID, "user": WHO}`` or ``{"receiver": R, "group_key": K | "group_id": G, "user": WHO}``;
        `how` is "api" unless the console says "console"."""
        usage = (
            'send {"incident": "<id>", "user": "<who>"} or {"receiver": "<name>", "group_key": "<key>",'
            ' "user": "<who>"}'
        )
        try:
            body = await self.admin.json_body(request)
        except ValueError:
            return error(400, usage)
        if not isinstance(body, dict):
            return error(400, usage)
        user, how = body.get("user"), body.get("how", "api")
        if not isinstance(user, str) or not _WHO.match(user) or how not in ("api", "console", "cli"):
            return error(400, usage + ' ("user": at most 64 characters, one line, no markup)')
        store = self.relay.oncall
        if store is None:
            return error(503, "the on-call store is not open")
        receiver, group = body.get("receiver"), body.get("group_id")
        if isinstance(body.get("group_key"), str):
            group = group_id(body["group_key"])
        if isinstance(body.get("incident"), str):
            incident = await store.incident(body["incident"][:64])
            if incident is None:
                return error(404, "no such incident")
            receiver, group = incident.receiver, incident.group_id
        if not isinstance(receiver, str) or not isinstance(group, str):
            return error(400, usage)
        result = await self.relay.acks.acknowledge(receiver, group, user, how)
        status = 404 if result.outcome == "unknown" else 200
        incident = result.incident
        return JSONResponse(
            {
                "outcome": result.outcome,
                "message": result.message,
                "incident": incident_json(incident) if incident else None,
            },
            status_code=status,
        )

    async def ack_page(self, request: Request) -> Response:
        config = self.relay.config
        words = _WORDS[config.render.language]
        key = config.oncall.ack_key
        if key is None:
            return self._page(words, words["refused"], "acknowledge links are off (oncall.ack_key)", 404)
        token = request.path_params["token"]
        try:
            receiver, group = verify(key.reveal().encode(), token, self.relay.clock())
        except BadLink as exc:
            status = 410 if "expired" in str(exc) else 400
            return self._page(words, words["refused"], str(exc), status)
        store = self.relay.oncall
        if store is None:
            return self._page(words, words["refused"], "the on-call store is not open", 503)
        digest = digest_job(group)
        groups = [group] if digest is None else await self._digest_groups(receiver, digest)
        if groups is None:
            return self._page(words, words["refused"], words["digest_gone"], 410)
        if request.method == "POST":
            try:
                form = (await read_body(request, 4096, config.server.body_timeout)).decode("utf-8", "replace")
            except (BodyTooLarge, BodyTooSlow):
                return self._page(words, words["refused"], "request too large or too slow", 400)
            typed = _form_value(form, "who")
            who = typed if typed and _WHO.match(typed) else "link"
            results = [await self.relay.acks.acknowledge(receiver, g, who, "link") for g in groups]
            if digest is None:
                return self._result(words, results[0])
            return self._digest_page(words, [(r.incident, r.outcome) for r in results if r.incident], "")
        if digest is not None:
            found = [await store.current(receiver, g) for g in groups]
            incidents = [i for i in found if i is not None]
            still = [i for i in incidents if i.resolved_at is None and i.acknowledged_at is None]
            button = "" if not still else self._form(words, words["button_all"] % len(still))
            return self._digest_page(words, [(i, self._state(i)) for i in incidents], button)
        incident = await store.current(receiver, group)
        if incident is None:
            return self._result(words, AckResult("unknown"))
        if incident.resolved_at is not None or incident.acknowledged_at is not None:
            return self._result(words, AckResult("resolved" if incident.resolved_at else "already", incident))
        body = f"<p><b>{html.escape(incident.title)}</b></p>" + self._form(words, words["button"])
        return self._page(words, words["title"], body, 200, raw=True)

    async def _digest_groups(self, receiver: str, job_id: int) -> Sequence[str] | None:
        """The group ids a digest merged, read from the digest the outbox keeps; None when it is gone
        (purged after `storage.retention`) or is not this receiver's digest."""
        outbox = self.relay.outbox
        job = await outbox.get_job(job_id) if outbox is not None else None
        if job is None or job.receiver != receiver or not job.digest_of:
            return None
        try:  # a storm's digest can be megabytes: parsed beside the event loop
            notification = await asyncio.to_thread(parse_notification, job.payload)
        except ValueError:
            return None
        return [group_id(key) for key in notification.digest_groups]

    @staticmethod
    def _state(incident: Incident) -> str | None:
        """What a digest's page says of a group before its button is pressed (None: still open)."""
        if incident.resolved_at is not None:
            return "resolved"
        return "already" if incident.acknowledged_at is not None else None

    @staticmethod
    def _form(words: dict[str, str], button: str) -> str:
        return (
            f"<form method='post'><label>{words['who']}<br><input name='who' maxlength='64'></label>"
            f"<p><button type='submit'>{html.escape(button)}</button></p></form>"
        )

    def _digest_page(
        self, words: dict[str, str], rows: Sequence[tuple[Incident, str | None]], button: str
    ) -> Response:
        """A digest's groups, one line each (its incident, and what became of it), then the button."""
        lines = []
        for incident, outcome in rows:
            said = (
                ""
                if outcome is None
                else " — " + words[outcome].format(who=html.escape(incident.acknowledged_by or ""))
            )
            lines.append(f"<li><b>{html.escape(incident.title)}</b>{said}</li>")
        body = (f"<ul>{''.join(lines)}</ul>" if lines else f"<p>{words['unknown']}</p>") + button
        return self._page(words, words["title"], body, 200, raw=True)

    def _result(self, words: dict[str, str], result: AckResult) -> Response:
        incident = result.incident
        said = words[result.outcome].format(
            who=html.escape(incident.acknowledged_by or "") if incident else ""
        )
        title = f"<p><b>{html.escape(incident.title)}</b></p>" if incident else ""
        status = 404 if result.outcome == "unknown" else 200
        return self._page(words, words["title"], f"{title}<p>{said}</p>", status, raw=True)

    @staticmethod
    def _page(words: dict[str, str], heading: str, body: str, status: int, raw: bool = False) -> Response:
        text = body if raw else f"<p>{html.escape(body)}</p>"
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(heading)}</title>"
            "<style>body{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em}"
            "button{font-size:1.2em;padding:.4em 1.6em}input{font-size:1em;width:100%}</style>"
            f"</head><body><h1>{html.escape(heading)}</h1>{text}</body></html>"
        )
        return HTMLResponse(page, status_code=status, headers=_PAGE_HEADERS)


def _form_value(form: str, name: str) -> str:
    try:
        values = parse_qs(form, max_num_fields=5).get(name, [])
    except ValueError:  # more fields than the form has
        return ""
    return values[0].strip() if values else ""
