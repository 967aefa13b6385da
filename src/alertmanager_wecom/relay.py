"""The webhook service: ``POST /alerts/{receiver}`` → delivery → WeCom.

Answers: 200 once delivered; 4xx with a JSON reason for bad requests (never a 5xx for user input);
503 when WeCom failed transiently, so that Alertmanager keeps the notification and retries;
424 when WeCom refused for a configuration reason that a retry would not fix (the body and the log
say the fix) — Alertmanager counts it as failed and does not hammer WeCom with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom import __version__
from alertmanager_wecom.config import Config
from alertmanager_wecom.delivery import Delivery
from alertmanager_wecom.payload import Notification
from alertmanager_wecom.secret import redact

log = logging.getLogger("alertmanager_wecom.relay")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": redact(message), **extra}, status_code=status)


def _validation_message(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        out.append(f"{loc}: {err['msg']}")
    return out


class Relay:
    def __init__(self, config: Config, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self.delivery: Delivery | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(timeout=self.config.wecom.timeout_seconds)
        self.delivery = Delivery(self.config, client)
        try:
            yield
        finally:
            if own_client:
                await client.aclose()

    async def alerts(self, request: Request) -> Response:
        name = request.path_params["receiver"]
        receiver = self.config.receiver(name)
        if receiver is None:
            return error(
                404,
                f"unknown receiver {name!r}: post to /alerts/<name> with a name from the config",
                receivers=[r.name for r in self.config.receivers],
            )
        try:
            body = await read_body(request, self.config.server.max_body_bytes)
        except BodyTooLarge:
            return error(
                413,
                f"body larger than server.max_body_bytes ({self.config.server.max_body_bytes} bytes);"
                " lower max_alerts in Alertmanager's webhook_config or raise the limit",
            )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"body is not valid JSON: {exc}")
        if not isinstance(data, dict):
            return error(400, "body must be a JSON object (Alertmanager's webhook payload)")
        try:
            notification = Notification.model_validate(data)
        except ValidationError as exc:
            return error(422, "body is not an Alertmanager webhook payload", details=_validation_message(exc))
        if self.delivery is None:
            return error(503, "starting up")
        outcome = await self.delivery.deliver(name, notification)
        if outcome.transient:
            failures = [f"{t.target}: {t.error.detail}" for t in outcome.transient if t.error]
            return error(
                503,
                "WeCom failed transiently; retry later",
                failures=failures,
                delivered_messages=outcome.messages,
            )
        if outcome.permanent:
            failures = [f"{t.target}: {t.error.detail}" for t in outcome.permanent if t.error]
            return error(
                424,
                "WeCom refused the message; see the fix below",
                failures=failures,
                delivered_messages=outcome.messages,
            )
        return JSONResponse({"status": "delivered", "messages": outcome.messages})

    async def index(self, request: Request) -> Response:
        return JSONResponse(
            {
                "service": "alertmanager-wecom",
                "version": __version__,
                "receivers": {r.name: f"/alerts/{r.name}" for r in self.config.receivers},
            }
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            Route("/healthz", self.healthz),
            Route("/alerts/{receiver}", self.alerts, methods=["POST"]),
        ]


def create_app(
    config: Config, client: httpx.AsyncClient | None = None, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    relay = Relay(config, client)
    app = Starlette(routes=relay.routes() + (extra_routes or []), lifespan=relay.lifespan)
    app.state.relay = relay
    return app
