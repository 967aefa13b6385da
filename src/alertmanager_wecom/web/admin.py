"""Admin endpoints: reload, list the outbox, retry dead letters. Off unless `server.admin_auth` is set
(or `server.admin_allow_loopback` for callers on this host); a request that changes state must be
JSON, so that a web page cannot make a browser send it (an HTML form cannot set that type)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.delivery.job_description import describe_job
from alertmanager_wecom.outbox import JobState, Outbox
from alertmanager_wecom.web.answers import JSON, BodyTooLarge, BodyTooSlow, error, read_body
from alertmanager_wecom.web.auth import authorized, challenge, is_loopback
from alertmanager_wecom.web.relay import Relay

Endpoint = Callable[[Request], Awaitable[Response]]
# Ids are SQLite integers.
_MAX_ID = 2**63 - 1


class Admin:
    """The operator's endpoints, each behind `guarded`: reload, the outbox's jobs, retrying dead letters."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def routes(self) -> list[BaseRoute]:
        return [
            # As Prometheus and Alertmanager take it: the reload sidecars (configmap-reload,
            # prometheus-config-reloader) POST with no body and no content type.
            Route("/-/reload", self.guarded(self.reload, changes=True, bodiless=True), methods=["POST"]),
            Route("/api/outbox", self.guarded(self.outbox_list, changes=False), methods=["GET"]),
            Route("/api/outbox/retry", self.guarded(self.outbox_retry, changes=True), methods=["POST"]),
            Route("/api/outbox/purge", self.guarded(self.outbox_purge, changes=True), methods=["POST"]),
            Route("/api/actions", self.guarded(self.actions_list, changes=False), methods=["GET"]),
        ]

    def guarded(self, endpoint: Endpoint, changes: bool, bodiless: bool = False) -> Endpoint:
        """`endpoint` behind the admin checks (`denied`): an endpoint that wraps an endpoint, so that no
        admin handler can forget them. `bodiless`: a POST without a content type is taken too."""

        async def checked(request: Request) -> Response:
            refused = self.denied(request, changes, bodiless)
            return refused if refused is not None else await endpoint(request)

        return checked

    def denied(self, request: Request, changes: bool, bodiless: bool = False) -> Response | None:
        """The answer that refuses an admin call, or None. `changes`: a POST that changes state, which
        must be JSON (a form cannot set that type) or, when `bodiless`, have no content type at all (a
        form always sends one), and must not come from another site's page (Origin, Sec-Fetch-Site)."""
        server = self.relay.config.server
        auth = server.admin_auth
        if auth is None:
            if not (
                server.admin_allow_loopback and is_loopback(request.client.host if request.client else None)
            ):
                return error(
                    403,
                    "admin endpoints are off: set server.admin_auth (bearer_token or basic_auth), or"
                    " server.admin_allow_loopback: true to let callers on this host use them",
                )
        elif not authorized(auth, request.headers.get("authorization")):
            return JSONResponse(
                {"error": "missing or wrong admin credentials"},
                status_code=401,
                headers={"WWW-Authenticate": challenge(auth)},
            )
        if changes:
            # A browser names the page that sent a request: another site's page is refused, whatever
            # Host it chose (the console's own script sends from a host this service serves).
            refusal = self.relay.hosts.origin_refusal(
                request.headers.get("origin"),
                request.headers.get("host", ""),
                request.headers.get("sec-fetch-site"),
            )
            if refusal is not None:
                return error(403, refusal)
            content_type = request.headers.get("content-type")
            media_type = (content_type or "").partition(";")[0].strip().lower()
            if media_type != JSON and not (bodiless and content_type is None):
                return error(415, "send the request with Content-Type: application/json")
        return None

    async def json_body(self, request: Request) -> Any:
        """An admin POST's JSON body ({} when empty); raises ValueError when it is not JSON."""
        try:
            body = await read_body(request, 1024 * 1024, self.relay.config.server.body_timeout)
        except (BodyTooLarge, BodyTooSlow):
            raise ValueError("body too large or too slow") from None
        try:
            return json.loads(body) if body.strip() else {}
        except RecursionError:  # nested deeper than the parser goes
            raise ValueError("nested too deeply") from None

    async def reload(self, request: Request) -> Response:
        ok, message = await self.relay.reload()
        if ok:
            return JSONResponse({"status": "reloaded"})
        return error(400, f"reload rejected, the running config stays in force: {message}")

    def _outbox(self) -> Outbox | Response:
        """The outbox, or the answer when it is not open."""
        return self.relay.outbox if self.relay.outbox is not None else error(503, "outbox not open")

    async def outbox_list(self, request: Request) -> Response:
        outbox = self._outbox()
        if isinstance(outbox, Response):
            return outbox
        raw_state = request.query_params.get("state")
        raw_limit = request.query_params.get("limit", "100")
        try:
            state = JobState(raw_state) if raw_state else None
        except ValueError:
            return error(400, "state is one of pending, done, dead, merged")
        if not (
            raw_limit.isascii() and raw_limit.isdigit() and 0 < len(raw_limit) <= 9 and int(raw_limit) > 0
        ):
            return error(400, "limit is a whole number from 1 (at most 1000 jobs are listed)")
        jobs = await outbox.list_jobs(state, min(1000, int(raw_limit)))
        return JSONResponse({"jobs": [describe_job(j).as_json() for j in jobs]})

    async def actions_list(self, request: Request) -> Response:
        """What was done from WeCom (who pressed what on which card, the silence ids) and the cards sent
        with their state: the audit of issue 11. Newest first, the last 200 of each."""
        cards = self.relay.cards
        if cards is None:
            return JSONResponse({"actions": [], "cards": [], "note": "no app has a callback: no cards"})
        actions = await cards.store.actions(200)
        sent = await cards.store.list_cards(200)
        return JSONResponse(
            {
                "actions": [dataclasses.asdict(a) for a in actions],
                "cards": [
                    {
                        "task_id": c.task_id,
                        "app": c.app,
                        "receiver": c.receiver,
                        "job_id": c.job_id,
                        "title": c.card.get("main_title", {}).get("title", ""),
                        "state": dataclasses.asdict(c.state),
                        "resolved": c.resolved,
                        "created_at": c.created_at,
                    }
                    for c in sent
                ],
            }
        )

    async def _chosen_ids(self, request: Request, usage: str) -> list[int] | Response | None:
        """The jobs a retry or purge names: ``{"ids": [...]}`` (at most 10000), or None for
        ``{"all_dead": true}``; else the 400 answer with `usage`."""
        try:
            body = await self.json_body(request)
        except ValueError:
            return error(400, usage)
        if not isinstance(body, dict):
            return error(400, usage)
        if body.get("all_dead") is True:
            return None
        raw = body.get("ids")
        if (
            isinstance(raw, list)
            and len(raw) <= 10000
            and all(type(i) is int and 0 < i <= _MAX_ID for i in raw)
        ):
            return raw
        return error(400, usage)

    async def outbox_purge(self, request: Request) -> Response:
        """Dead letters deleted: ``{"ids": [...]}`` or ``{"all_dead": true}`` (only dead ones, ever)."""
        outbox = self._outbox()
        if isinstance(outbox, Response):
            return outbox
        usage = 'send {"ids": [1, 2]} (dead letters\' job ids, at most 10000) or {"all_dead": true}'
        ids = await self._chosen_ids(request, usage)
        if isinstance(ids, Response):
            return ids
        count = await outbox.purge([JobState.DEAD], self.relay.clock() + 1, job_ids=ids)
        return JSONResponse({"purged": count})

    async def outbox_retry(self, request: Request) -> Response:
        outbox = self._outbox()
        if isinstance(outbox, Response):
            return outbox
        usage = 'send {"ids": [1, 2]} (job ids, at most 10000) or {"all_dead": true}'
        ids = await self._chosen_ids(request, usage)
        if isinstance(ids, Response):
            return ids
        count = await outbox.requeue(ids, self.relay.clock())
        if self.relay.dispatcher is not None:
            self.relay.dispatcher.wake(await outbox.pending_targets())
        return JSONResponse({"requeued": count})
