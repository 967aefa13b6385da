"""The webhook service: ``POST /alerts/{receiver}`` → the durable outbox → the dispatcher → WeCom.

Answers: 200 once the notification is committed to the outbox (or recognised as an HA duplicate);
4xx with a JSON reason for bad requests (never a 5xx for user input); 503 when it cannot be stored
durably or the service is shutting down, so that Alertmanager keeps it and retries.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom import __version__
from alertmanager_wecom.config import Config
from alertmanager_wecom.dedup import dedup_key
from alertmanager_wecom.dispatcher import Dispatcher
from alertmanager_wecom.outbox import Outbox, OutboxUnavailable, SQLiteOutbox
from alertmanager_wecom.payload import Notification
from alertmanager_wecom.routing import Router
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


def open_outbox(config: Config) -> Outbox:
    storage = config.storage
    return SQLiteOutbox(storage.path, synchronous=storage.synchronous, max_size_mb=storage.max_size_mb)


class Relay:
    def __init__(
        self,
        config: Config,
        client: httpx.AsyncClient | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._client = client
        self._outbox = outbox
        self.clock = clock
        self.outbox: Outbox | None = None
        self.dispatcher: Dispatcher | None = None
        self.draining = False
        self.router = Router(config)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        client = self._client or httpx.AsyncClient(timeout=self.config.wecom.timeout_seconds)
        outbox = self._outbox or open_outbox(self.config)
        self.outbox = outbox
        self.dispatcher = Dispatcher(self.config, outbox, client, clock=self.clock)
        await self.dispatcher.start()
        try:
            yield
        finally:
            # Intake stops first (503), then in-flight sends finish; what is queued stays in the outbox.
            self.draining = True
            await self.dispatcher.stop()
            if self._outbox is None:
                await outbox.close()
            if self._client is None:
                await client.aclose()
            log.info("stopped; undelivered notifications stay in the outbox for the next start")

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
                f"body larger than server.max_body_bytes ({self.config.server.max_body_bytes} "
                "bytes); lower max_alerts in Alertmanager's webhook_config or raise the limit",
            )
        try:
            # pydantic parses and validates in one pass (in Rust): the hot path of every webhook.
            notification = Notification.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                return error(400, f"body is not valid JSON: {first['msg']}")
            if first["type"] == "model_type":
                return error(400, "body must be a JSON object (Alertmanager's webhook payload)")
            return error(422, "body is not an Alertmanager webhook payload", details=_validation_message(exc))
        text = body.decode("utf-8", errors="replace")
        if self.draining or self.outbox is None or self.dispatcher is None:
            return error(503, "shutting down; retry")
        try:
            jobs = self.router.route(name, notification, text)
            result = await self.outbox.accept(
                name,
                jobs,
                dedup_key(name, notification),
                self.config.delivery.dedup_window,
                self.clock(),
            )
        except OutboxUnavailable as exc:
            log.error("cannot store a notification for receiver %s: %s", name, exc)
            return error(503, f"cannot store the notification durably ({exc}); retry")
        if result.duplicate:
            log.info("duplicate notification for receiver %s (another Alertmanager replica sent it)", name)
            return JSONResponse({"status": "duplicate"})
        self.dispatcher.wake(job.target_key for job in jobs if job.dead_reason is None)
        return JSONResponse({"status": "accepted", "id": result.notification_id})

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

    async def readyz(self, request: Request) -> Response:
        problems = []
        if self.draining:
            problems.append("shutting down")
        if self.dispatcher is None or not self.dispatcher.running:
            problems.append("dispatcher not running")
        if self.outbox is not None:
            try:
                stats = await self.outbox.stats(self.clock())
            except OutboxUnavailable as exc:
                problems.append(str(exc))
            else:
                if not problems:
                    return JSONResponse(
                        {
                            "status": "ready",
                            "pending": stats.pending,
                            "dead": stats.dead,
                            "oldest_pending_seconds": round(stats.oldest_pending_age, 1),
                        }
                    )
        else:
            problems.append("outbox not open")
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/alerts/{receiver}", self.alerts, methods=["POST"]),
        ]


def create_app(
    config: Config,
    client: httpx.AsyncClient | None = None,
    outbox: Outbox | None = None,
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    relay = Relay(config, client, outbox)
    app = Starlette(routes=relay.routes() + (extra_routes or []), lifespan=relay.lifespan)
    app.state.relay = relay
    return app
