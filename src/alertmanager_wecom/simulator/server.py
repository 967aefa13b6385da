"""The simulator's HTTP face: WeCom's paths under /cgi-bin/, an inbox page, and admin endpoints."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import jinja2
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from alertmanager_wecom.simulator import view
from alertmanager_wecom.simulator.admin_guard import admin_only
from alertmanager_wecom.simulator.callbacks import CallbackSender, SavedCallback
from alertmanager_wecom.simulator.model import Faults, SimulatorSettings
from alertmanager_wecom.simulator.state import Reply, SimulatorState

_pages = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True, undefined=jinja2.StrictUndefined
)
_pages.globals["show"] = view.render
_pages.globals["show_card"] = view.card


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


class SimulatorServer:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.callbacks = CallbackSender()

    async def _fault(self, endpoint: str) -> Response | None:
        """Injected faults: WeCom's busy and limit answers, a gateway error, or a slow answer."""
        fault = self.state.pick_fault()
        if fault is None:
            return None
        if fault == "slow":
            await asyncio.sleep(self.state.settings.faults.slow_seconds)
            return None
        self.state.count(endpoint, -1 if fault == "busy" else 45009 if fault == "rate_limit" else 502)
        if fault == "busy":
            return JSONResponse({"errcode": -1, "errmsg": "system busy"})
        if fault == "rate_limit":
            return JSONResponse({"errcode": 45009, "errmsg": "api freq out of limit"})
        return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502)

    @staticmethod
    def _json(reply: Reply) -> JSONResponse:
        # WeCom answers HTTP 200 even for errors: callers must read errcode.
        return JSONResponse(reply)

    async def gettoken(self, request: Request) -> Response:
        return await self._fault("gettoken") or self._json(self.state.gettoken(dict(request.query_params)))

    async def message_send(self, request: Request) -> Response:
        fault = await self._fault("message/send")
        if fault is not None:
            return fault
        body = await request.body()
        return self._json(self.state.message_send(dict(request.query_params), body, _ip(request)))

    async def webhook_send(self, request: Request) -> Response:
        fault = await self._fault("webhook/send")
        if fault is not None:
            return fault
        body = await request.body()
        return self._json(self.state.robot_send(dict(request.query_params), body))

    async def update_template_card(self, request: Request) -> Response:
        fault = await self._fault("message/update_template_card")
        if fault is not None:
            return fault
        body = await request.body()
        return self._json(self.state.update_template_card(dict(request.query_params), body))

    async def appchat(self, request: Request) -> Response:
        action = request.path_params["action"]
        fault = await self._fault(f"appchat/{action}")
        if fault is not None:
            return fault
        body = await request.body()
        return self._json(self.state.appchat(action, dict(request.query_params), body))

    async def user_lookup(self, request: Request) -> Response:
        """user/getuserid and user/get_userid_by_email (simulator/directory.py)."""
        endpoint = request.url.path.removeprefix("/cgi-bin/")
        fault = await self._fault(endpoint)
        if fault is not None:
            return fault
        body = await request.body()
        return self._json(self.state.lookup_userid(endpoint, dict(request.query_params), body))

    async def media_upload(self, request: Request) -> Response:
        data: bytes | None = None
        async with request.form() as form:
            media = form.get("media")
            if isinstance(media, UploadFile):
                data = await media.read()
        params = dict(request.query_params)
        return self._json(self.state.media_upload(params, params.get("type", ""), data))

    async def media_file(self, request: Request) -> Response:
        """A stored picture, for the inbox page."""
        found = self.state.media_bytes(request.path_params["media_id"])
        if found is None:
            return JSONResponse({"error": "no such media"}, status_code=404)
        return Response(found[0], media_type=found[1])

    async def demo_query_range(self, request: Request) -> Response:
        """A Prometheus stand-in for the sandbox's charts (not WeCom's): any query_range answers one
        made-up series, a wave that climbs over the last part of the window, so the demo shows a chart
        without a Prometheus."""
        query = request.query_params
        try:
            start, end = float(query["start"]), float(query["end"])
            step = max(1.0, float(query.get("step", "15")))
        except (KeyError, ValueError):
            return JSONResponse(
                {"status": "error", "error": "start, end and step are numbers"}, status_code=400
            )
        points: list[list[float | str]] = []
        at = start
        while at <= end and len(points) < 11000:
            share = (at - start) / max(1.0, end - start)
            value = (
                0.4
                + 0.15 * math.sin((at - start) / max(60.0, (end - start) / 6))
                + (0.5 * (share - 0.6) / 0.4 if share > 0.6 else 0.0)
            )
            points.append([at, f"{value:.4f}"])
            at += step
        metric = {"__name__": "demo", "query": str(query.get("query", ""))[:80]}
        return JSONResponse(
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": metric, "values": points}]},
            }
        )

    async def inbox_page(self, request: Request) -> Response:
        recipient = request.query_params.get("user")
        entries = list(reversed(self.state.entries(recipient)))[:500]
        recipients = sorted({e["recipient"] for e in self.state.entries()})
        html = _pages.get_template("inbox.html").render(
            entries=entries,
            recipients=recipients,
            selected=recipient,
            stats=self.state.stats(),
            trimmed=self.state.trimmed_count(recipient),
            kept=self.state.settings.inbox_per_recipient,
        )
        return HTMLResponse(html)

    async def inbox_json(self, request: Request) -> Response:
        recipient = request.query_params.get("user")
        return JSONResponse(
            {
                "entries": self.state.entries(recipient),
                # Older messages no longer kept: each person keeps the newest `kept_per_recipient`.
                "trimmed": self.state.trimmed_count(recipient),
                "kept_per_recipient": self.state.settings.inbox_per_recipient,
            }
        )

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"status": "reset"})

    async def revoke(self, request: Request) -> Response:
        return JSONResponse({"revoked": self.state.revoke_tokens()})

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.state.set_faults(Faults.model_validate(await self._body(request)))
            except (ValidationError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.state.settings.faults.model_dump())

    async def trusted_ips(self, request: Request) -> Response:
        try:
            data = await self._body(request)
            agent_id = int(data["agent_id"])
            ips = data.get("ips")
            if ips is not None and not isinstance(ips, list):
                raise ValueError("ips must be a list or null")
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"expected {{agent_id, ips}}: {exc}"}, status_code=400)
        if not self.state.set_trusted_ips(agent_id, ips):
            return JSONResponse({"error": f"no app with agent_id {agent_id}"}, status_code=404)
        return JSONResponse({"agent_id": agent_id, "trusted_ips": ips})

    async def save_callback(self, request: Request) -> Response:
        """``{agent_id, url, token, encoding_aes_key}``: save an app's callback URL, verifying it first."""
        try:
            data = await self._body(request)
            agent_id = int(data["agent_id"])
            url, token, key = (str(data[k]) for k in ("url", "token", "encoding_aes_key"))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse(
                {"error": f"expected {{agent_id, url, token, encoding_aes_key}}: {exc}"}, status_code=400
            )
        corp = next(
            (c for c in self.state.settings.corps if any(a.agent_id == agent_id for a in c.apps)), None
        )
        if corp is None:
            return JSONResponse({"error": f"no app with agent_id {agent_id}"}, status_code=404)
        result = await self.callbacks.save(corp.corp_id, agent_id, url, token, key)
        if result["saved"]:
            self.state.callback_apps.add(agent_id)
        return JSONResponse(result, status_code=200 if result["saved"] else 422)

    async def click(self, request: Request) -> Response:
        """``{agent_id, userid, event_key, task_id}``: a person presses a card button."""
        try:
            data = await self._body(request)
            agent_id = int(data["agent_id"])
            userid, key, task = (str(data[k]) for k in ("userid", "event_key", "task_id"))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse(
                {"error": f"expected {{agent_id, userid, event_key, task_id}}: {exc}"}, status_code=400
            )
        problem = self.state.press_problem(agent_id, task, userid, key)
        if problem is not None:
            return JSONResponse({"sent": False, "error": problem}, status_code=404)
        code = self.state.click_code(agent_id, task)
        result = await self.callbacks.click(agent_id, userid, key, task, code)
        return JSONResponse(result, status_code=200 if result["sent"] else 422)

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    def routes(self) -> list[Route]:
        return [
            Route("/cgi-bin/gettoken", self.gettoken, methods=["GET"]),
            Route("/cgi-bin/message/send", self.message_send, methods=["POST"]),
            Route("/cgi-bin/message/update_template_card", self.update_template_card, methods=["POST"]),
            Route("/cgi-bin/webhook/send", self.webhook_send, methods=["POST"]),
            Route("/cgi-bin/media/upload", self.media_upload, methods=["POST"]),
            Route("/cgi-bin/appchat/{action}", self.appchat, methods=["GET", "POST"]),
            Route("/cgi-bin/user/getuserid", self.user_lookup, methods=["POST"]),
            Route("/cgi-bin/user/get_userid_by_email", self.user_lookup, methods=["POST"]),
            Route("/inbox", self.inbox_page, methods=["GET"]),
            Route("/api/v1/query_range", self.demo_query_range, methods=["GET"]),
            # Every admin endpoint: same-origin (or no Origin) only, and JSON bodies (admin_guard.py).
            Route("/admin/inbox", admin_only(self.inbox_json), methods=["GET"]),
            Route("/admin/media/{media_id}", admin_only(self.media_file), methods=["GET"]),
            Route("/admin/stats", admin_only(self.stats), methods=["GET"]),
            Route("/admin/reset", admin_only(self.reset), methods=["POST"]),
            Route("/admin/tokens/revoke", admin_only(self.revoke), methods=["POST"]),
            Route("/admin/faults", admin_only(self.faults), methods=["GET", "POST"]),
            Route("/admin/trusted-ips", admin_only(self.trusted_ips), methods=["POST"]),
            Route("/admin/callback", admin_only(self.save_callback), methods=["POST"]),
            Route("/admin/callback/click", admin_only(self.click), methods=["POST"]),
            Route("/admin/click", admin_only(self.click), methods=["POST"]),
        ]


def create_simulator_app(
    settings: SimulatorSettings | SimulatorState, callbacks: dict[int, SavedCallback] | None = None
) -> Starlette:
    """`callbacks`: apps whose callback URL is set from the start, as if saved in the admin console
    (the sandbox's, whose relay is not listening yet to be verified)."""
    state = settings if isinstance(settings, SimulatorState) else SimulatorState(settings)
    server = SimulatorServer(state)
    for agent_id, saved in (callbacks or {}).items():
        server.callbacks.saved[agent_id] = saved
        state.callback_apps.add(agent_id)
    app = Starlette(routes=server.routes())
    app.state.simulator = state
    return app
