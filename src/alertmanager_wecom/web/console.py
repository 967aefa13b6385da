"""The operators' console at /ui: server-rendered pages (Jinja2, escaped by default) behind the admin
checks (web/admin.py: `server.admin_auth`, or loopback when allowed). What changes state (retry, purge,
running the checks) goes through JSON POSTs from the page's script: a form on another site cannot send
them (not JSON, and the Origin is checked), so they cannot be forged cross-site. Secrets never reach a
page: the config is shown as its models dump it, every secret masked."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.channels.checks import run_checks
from alertmanager_wecom.delivery.job_description import describe_job
from alertmanager_wecom.oncall.store import Incident
from alertmanager_wecom.rendering.environment import builtin_source
from alertmanager_wecom.samples import node_down
from alertmanager_wecom.simulator import view
from alertmanager_wecom.web import console_data as data
from alertmanager_wecom.web import console_oncall as oncall_data
from alertmanager_wecom.web.admin import Admin, Endpoint
from alertmanager_wecom.web.answers import error, paging_offset, store_guarded
from alertmanager_wecom.web.console_chart import READ, duration, tta_chart
from alertmanager_wecom.web.console_text import TEXT, language
from alertmanager_wecom.web.preview_worker import PreviewWorker
from alertmanager_wecom.web.relay import Relay, wecom_client

_pages = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_pages.globals.update(show=view.render, show_card=view.card, age=data.age, when=data.when, duration=duration)


class Console:
    def __init__(self, relay: Relay, admin: Admin) -> None:
        self.relay = relay
        self.admin = admin
        self.worker = PreviewWorker()
        relay.on_stop.append(self.worker.stop)

    def routes(self) -> list[BaseRoute]:
        def page(endpoint: Endpoint) -> Endpoint:
            return self.admin.guarded(endpoint, changes=False)

        def change(endpoint: Endpoint) -> Endpoint:
            return self.admin.guarded(endpoint, changes=True)

        return [
            Route("/ui", page(self.overview), methods=["GET"]),
            Route("/ui/deliveries", page(self.deliveries), methods=["GET"]),
            Route("/ui/deliveries/{job_id:int}", page(self.delivery), methods=["GET"]),
            Route("/ui/dead", page(self.dead), methods=["GET"]),
            Route("/ui/preview", page(self.preview), methods=["GET"]),
            Route("/ui/api/preview", change(self.preview_api), methods=["POST"]),
            Route("/ui/actions", page(self.actions), methods=["GET"]),
            Route("/ui/setup", page(self.setup), methods=["GET"]),
            Route("/ui/api/checks", change(self.checks_api), methods=["POST"]),
            Route("/ui/config", page(self.config), methods=["GET"]),
            # Read from the on-call store: its outage is a 503 with the reason, never a 500.
            Route("/ui/oncall", page(store_guarded(self.oncall)), methods=["GET"]),
            Route("/ui/incidents", page(store_guarded(self.incidents)), methods=["GET"]),
        ]

    def _page(self, request: Request, name: str, **values: Any) -> Response:
        lang = language(
            request.headers.get("accept-language", ""),
            request.query_params.get("lang") or request.cookies.get("lang"),
        )
        # Only the page's own scripts run (each carries this request's nonce): markup that alert data
        # might smuggle into a page could not run a script, load anything, or send a form elsewhere.
        nonce = secrets.token_urlsafe(16)
        html = _pages.get_template(name).render(
            t=TEXT[lang], lang=lang, page=name.removesuffix(".html"), nonce=nonce, **values
        )
        headers = {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": CSP.format(nonce=nonce),
        }
        response = HTMLResponse(html, headers=headers)
        if request.query_params.get("lang") in TEXT:
            response.set_cookie("lang", lang, max_age=365 * 86400, samesite="strict", httponly=True)
        return response

    async def overview(self, request: Request) -> Response:
        return self._page(request, "overview.html", o=await data.overview(self.relay))

    async def deliveries(self, request: Request) -> Response:
        query = request.query_params.get("q", "")[:200]
        state = request.query_params.get("state") or None
        if state not in (None, "pending", "done", "dead", "merged"):
            state = None
        rows = await data.search(self.relay, query, state)
        return self._page(request, "deliveries.html", rows=rows, q=query, state=state or "")

    async def delivery(self, request: Request) -> Response:
        if self.relay.outbox is None:
            return error(503, "outbox not open")
        job = await self.relay.outbox.get_job(request.path_params["job_id"])
        if job is None:
            return error(404, "no such notification in the outbox (purged?)")
        messages, problem = await data.job_messages(self.relay, job)
        return self._page(
            request,
            "delivery.html",
            job=job,
            row=describe_job(job),
            messages=messages,
            problem=problem,
            payload=await asyncio.to_thread(data.payload_of, job),
        )

    async def dead(self, request: Request) -> Response:
        rows = await data.search(self.relay, "", "dead", limit=500)
        return self._page(request, "dead.html", rows=rows)

    async def preview(self, request: Request) -> Response:
        targets = [
            {
                "receiver": r.name,
                "index": i,
                "label": f"{r.name} · {kind_of(t).describe(t)} · {t.msgtype}",
                "msgtype": t.msgtype,
            }
            for r in self.relay.config.receivers
            for i, t in enumerate(r.targets)
        ]
        msgtypes = {t.msgtype for r in self.relay.config.receivers for t in r.targets}
        sources = {m: builtin_source(m) for m in msgtypes}
        first = self.relay.config.receivers[0].name if self.relay.config.receivers else "default"
        sample = json.dumps(node_down(3, receiver=first), ensure_ascii=False, indent=2)
        # Started now, in the background: the first edit's preview answers without the worker's start-up.
        self._warming = asyncio.get_running_loop().create_task(self.worker.warm())
        return self._page(request, "preview.html", targets=targets, sources=sources, sample=sample)

    async def preview_api(self, request: Request) -> Response:
        try:
            body = await self.admin.json_body(request)
            payload, receiver, index = str(body["payload"]), str(body["receiver"]), int(body["index"])
            template = body.get("template")
            if template is not None and not isinstance(template, str):
                raise ValueError("template is text")
        except (ValueError, KeyError, TypeError):
            return error(400, "send {payload, receiver, index, template}")
        if len(payload) > 1024 * 1024 or (template and len(template) > 64 * 1024):
            return error(413, "the payload is at most 1 MiB, a template 64 KiB")
        # In the worker process: the template is code from the request (web/preview_worker.py).
        result = await self.worker.preview(self.relay.config, payload, receiver, index, template)
        shown = [
            {
                "msgtype": m["msgtype"],
                "bytes": m["bytes"],
                "limit": m["limit"],
                "html": str(
                    view.card({"card": m["card"], "source": "", "recipient": ""})
                    if m["card"]
                    else view.render(m["msgtype"], m["content"])
                ),
            }
            for m in result["messages"]
        ]
        return JSONResponse({"messages": shown, "error": result["error"]})

    async def actions(self, request: Request) -> Response:
        cards = self.relay.cards
        actions = await cards.store.actions(200) if cards is not None else []
        sent = await cards.store.list_cards(100) if cards is not None else []
        return self._page(request, "actions.html", actions=actions, cards=sent, enabled=cards is not None)

    async def setup(self, request: Request) -> Response:
        config = self.relay.config
        callbacks = [(name, app.callback) for name, app in config.apps.items() if app.callback is not None]
        return self._page(
            request, "setup.html", apps=list(config.apps), callbacks=callbacks, files=config.verify_files
        )

    async def checks_api(self, request: Request) -> Response:
        client = wecom_client(self.relay.config)
        try:
            results = await run_checks(self.relay.config, client)
        except httpx.HTTPError as exc:
            return error(502, f"the checks could not run: {type(exc).__name__}")
        finally:
            await client.aclose()
        return JSONResponse(
            {"results": [{"ok": r.ok, "subject": r.subject, "message": r.message} for r in results]}
        )

    async def config(self, request: Request) -> Response:
        return self._page(request, "config.html", shown=data.masked_config(self.relay))

    async def oncall(self, request: Request) -> Response:
        store = self.relay.oncall
        configured = dict(self.relay.config.oncall.schedules)
        views: list[oncall_data.ScheduleView] = []
        overrides: list[oncall_data.ShownOverride] = []
        if store is not None and configured:
            views, overrides = await oncall_data.schedules(store, configured, self.relay.clock())
        return self._page(
            request,
            "oncall.html",
            schedules=views,
            overrides=overrides,
            enabled=store is not None,
        )

    async def incidents(self, request: Request) -> Response:
        store = self.relay.oncall
        now = self.relay.clock()
        tz = ZoneInfo(self.relay.config.render.time_zone)
        # The closed ones a page at a time, from `offset` of the whole list (newest first): the open ones
        # are on every page; a bad offset reads the first page.
        offset = paging_offset(request) or 0
        shown: list[oncall_data.IncidentView] = []
        recent: list[Incident] = []
        older = newer = None
        if store is not None:
            per_page = oncall_data.RECENT_SHOWN
            open_ones = await store.incidents(oncall_data.OPEN_SHOWN, open_only=True)
            recent = await store.incidents(READ)
            # One more than a page: whether there is an older page at all.
            page = await store.incidents(per_page + 1, offset=offset) if offset else recent
            if len(page) > per_page:
                older = offset + per_page
            if offset:  # back a page; from past the end (an offset typed by hand), to the first
                newer = max(0, offset - per_page) if page else 0
            shown = [oncall_data.incident_view(i, tz) for i in oncall_data.ordered(open_ones, page)]
        return self._page(
            request,
            "incidents.html",
            open_ones=[v for v in shown if v.incident.open],
            closed=[v for v in shown if not v.incident.open],
            older=older,
            newer=newer,
            chart=tta_chart(recent, now, tz),
            me=_basic_user(request.headers.get("authorization", "")),
            zone=tz.key,
            enabled=store is not None,
        )


def _basic_user(authorization: str) -> str:
    """The name the console's user logged in with (basic auth), to acknowledge as; else ""."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        user = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return user[:64]
