"""The webhook service: ``POST /alerts/{receiver}`` → the durable outbox → the dispatcher → WeCom.

Answers: 200 once the notification is committed to the outbox (or recognised as an HA duplicate);
4xx with a JSON reason for bad requests (never a 5xx for user input); 503 when it cannot be stored
durably or the service is shutting down, so that Alertmanager keeps it and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom import __version__
from alertmanager_wecom.config import Config, ConfigError
from alertmanager_wecom.config.loader import load_config
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.ingest.dedup import dedup_key
from alertmanager_wecom.ingest.payload import (
    LARGE_BODY,
    InvalidTime,
    alert_instants,
    collector_paused,
    parse_notification,
    validate_webhook,
)
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import JobState, NewJob, Outbox, OutboxUnavailable, SQLiteOutbox
from alertmanager_wecom.secret import redact
from alertmanager_wecom.web.auth import TrustedProxies, authorized, challenge, is_loopback
from alertmanager_wecom.wecom.api import http_client

log = logging.getLogger("alertmanager_wecom.web.app")


_JSON = "application/json"


class InternalFields(Exception):
    """The webhook sets fields that are the relay's own bookkeeping (digests): refused."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The request's body, if it is at most `limit` bytes and arrives within `seconds`: a client
    that stops sending half-way would otherwise hold its connection (and the body read so far)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTooSlow from None
    return b"".join(chunks)


def body_too_slow(timeout: float) -> JSONResponse:
    return JSONResponse(
        {"error": f"the request body did not arrive within server.body_timeout ({timeout:g}s)"},
        status_code=408,
        headers={"Connection": "close"},
    )


# State the dispatcher keeps in a stored notification (a digest's bookkeeping): never from a request.
_INTERNAL_FIELDS = ("digest_of", "digest_max_messages")
# Ids are SQLite integers.
_MAX_ID = 2**63 - 1


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": redact(message), **extra}, status_code=status)


def _validation_message(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        out.append(f"{loc}: {err['msg']}")
    return out


def open_outbox(config: Config, metrics: Metrics | None = None) -> Outbox:
    storage = config.storage
    return SQLiteOutbox(
        storage.path,
        synchronous=storage.synchronous,
        max_size_mb=storage.max_size_mb,
        on_ingest_exit=metrics.ingest_writer_exits.inc if metrics is not None else None,
    )


def wecom_client(config: Config) -> httpx.AsyncClient:
    return http_client(config.wecom)


def freeze_heap() -> None:
    """Put what is alive now (modules, config, compiled templates and schemas) out of the collector's
    reach. Webhooks awaiting their commit keep request objects alive across young collections, so they
    reach the oldest generation and trigger full collections every few seconds under load; each walked
    the whole start-up heap (25 ms on the test machine) and was the webhook's p99. Frozen, a full
    collection walks only what was allocated since (2 ms)."""
    gc.collect()
    gc.freeze()


class Relay:
    def __init__(
        self,
        config: Config,
        client: httpx.AsyncClient | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.time,
        config_path: str | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.metrics = Metrics()
        self._reload_lock = asyncio.Lock()
        self._client = client
        self._outbox = outbox
        self.clock = clock
        self.outbox: Outbox | None = None
        self.dispatcher: Dispatcher | None = None
        self.draining = False
        self.router = Router(config)
        self._accepted_counters: dict[str, Counter] = {}

    def _accepted(self, receiver: str) -> Counter:
        """The receiver's accepted-notifications counter, looked up once (labels() takes a lock)."""
        counter = self._accepted_counters.get(receiver)
        if counter is None:
            counter = self._accepted_counters[receiver] = self.metrics.notifications.labels(
                receiver, "accepted"
            )
        return counter

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        client = self._client or wecom_client(self.config)
        outbox = self._outbox or open_outbox(self.config, self.metrics)
        self.outbox = outbox
        self.dispatcher = Dispatcher(self.config, outbox, client, clock=self.clock, metrics=self.metrics)
        await self.dispatcher.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        freeze_heap()
        try:
            yield
        finally:
            gc.unfreeze()
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
        config = self.config
        receiver = config.receiver(name)
        if receiver is None:
            return error(
                404,
                f"unknown receiver {name!r}: post to /alerts/<name> with a name from the config",
                receivers=[r.name for r in config.receivers],
            )
        auth = receiver.auth or config.server.auth
        if auth is not None and not authorized(auth, request.headers.get("authorization")):
            self.metrics.notifications.labels(name, "unauthorized").inc()
            return JSONResponse(
                {"error": "missing or wrong credentials for this receiver"},
                status_code=401,
                headers={"WWW-Authenticate": challenge(auth)},
            )
        try:
            body = await read_body(request, config.server.max_body_bytes, config.server.body_timeout)
        except BodyTooLarge:
            return self._too_large(name, request)
        except BodyTooSlow:
            self.metrics.notifications.labels(name, "rejected").inc()
            return body_too_slow(config.server.body_timeout)
        try:
            if len(body) <= LARGE_BODY:
                jobs, key = self._prepare(name, body)
            else:
                # Thousands of alerts: worked through in a thread, in pieces, so that the event loop goes
                # on answering meanwhile (see payload.py).
                jobs, key = await asyncio.to_thread(self._prepare_large, name, body)
        except ValidationError as exc:
            self.metrics.notifications.labels(name, "rejected").inc()
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                return error(400, f"body is not valid JSON: {first['msg']}")
            if first["type"] == "dict_type" and not first["loc"]:
                return error(400, "body must be a JSON object (Alertmanager's webhook payload)")
            return error(422, "body is not an Alertmanager webhook payload", details=_validation_message(exc))
        except InvalidTime as exc:
            self.metrics.notifications.labels(name, "rejected").inc()
            return error(422, "body is not an Alertmanager webhook payload", details=[str(exc)])
        except InternalFields as exc:
            self.metrics.notifications.labels(name, "rejected").inc()
            return error(
                422,
                "body is not an Alertmanager webhook payload",
                details=[
                    f"{field}: internal to alertmanager-wecom, not accepted in a webhook"
                    for field in exc.fields
                ],
            )
        if self.draining or self.outbox is None or self.dispatcher is None:
            self.metrics.notifications.labels(name, "unavailable").inc()
            return error(503, "shutting down; retry")
        try:
            result = await self.outbox.accept(name, jobs, key, config.delivery.dedup_window, self.clock())
        except OutboxUnavailable as exc:
            self.metrics.notifications.labels(name, "unavailable").inc()
            log.error("cannot store a notification for receiver %s: %s", name, exc)
            return error(503, f"cannot store the notification durably ({exc}); retry")
        if result.duplicate:
            self.metrics.notifications.labels(name, "duplicate").inc()
            self.metrics.dedup_hits.labels(name).inc()
            log.info("duplicate notification for receiver %s (another Alertmanager replica sent it)", name)
            return JSONResponse({"status": "duplicate"})
        self._accepted(name).inc()
        self.dispatcher.wake(job.target_key for job in jobs if job.dead_reason is None)
        # Written out: this answer is on every webhook's path, and it needs no JSON encoder.
        return Response(b'{"status":"accepted","id":%d}' % (result.notification_id or 0), media_type=_JSON)

    def _prepare_large(self, name: str, body: bytes) -> tuple[list[NewJob], str]:
        with collector_paused():
            jobs, key = self._prepare(name, body)
        # As UTF-8, here rather than when they are sent to the ingest child, on the event loop.
        encoded: dict[int, bytes] = {}  # targets that share a payload keep sharing it
        for index, job in enumerate(jobs):
            if isinstance(job.payload, str):
                if id(job.payload) not in encoded:
                    encoded[id(job.payload)] = job.payload.encode()
                jobs[index] = dataclasses.replace(job, payload=encoded[id(job.payload)])
        return jobs, key

    def _prepare(self, name: str, body: bytes) -> tuple[list[NewJob], str]:
        """The webhook's jobs and dedup key: its CPU work before the commit. The body goes to the outbox as
        it came (UTF-8: the ingest child decodes it)."""
        # One pass in pydantic's core (Rust) parses and checks the body: the hot path of every webhook.
        webhook = validate_webhook(body)
        internal = [field for field in _INTERNAL_FIELDS if field in webhook]
        if internal:
            raise InternalFields(internal)
        instants = alert_instants(webhook)
        jobs = self.router.route_whole(name, body, len(webhook["alerts"]))
        if jobs is None:  # targets that route by alert need the model
            jobs = self.router.route(name, parse_notification(body), body)
        return jobs, dedup_key(name, webhook, instants)

    def _too_large(self, receiver: str, request: Request) -> Response:
        """413, which Alertmanager does not retry: the alerts are lost unless someone acts, so say how."""
        limit = self.config.server.max_body_bytes
        declared = request.headers.get("content-length", "")
        size = f"{declared} bytes" if declared.isdigit() else "a body"
        self.metrics.notifications.labels(receiver, "rejected").inc()
        self.metrics.webhooks_too_large.labels(receiver).inc()
        log.warning(
            "receiver %s: refused %s over server.max_body_bytes (%d); Alertmanager does not retry this, so"
            " its alerts are not delivered: set max_alerts in Alertmanager's webhook_config (see"
            " `alertmanager-wecom alertmanager-config`) or raise server.max_body_bytes",
            receiver,
            size,
            limit,
        )
        return error(
            413,
            f"body larger than server.max_body_bytes ({limit} bytes);"
            " lower max_alerts in Alertmanager's webhook_config or raise the limit",
        )

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
        """Ready when a webhook would be committed now: the outbox takes a test write through the same
        path (see Outbox.check_writable), and the dispatcher runs."""
        problems = []
        if self.draining:
            problems.append("shutting down")
        if self.dispatcher is None or not self.dispatcher.running:
            problems.append("dispatcher not running")
        if self.outbox is None:
            problems.append("outbox not open")
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        now = self.clock()
        problem = await self.outbox.check_writable(now)
        if problem is not None:
            problems.append(f"cannot accept notifications: {problem}")
        try:
            stats = await self.outbox.stats(now)
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
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)

    # -- operations -----------------------------------------------------------------------------------

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again. A bad file is rejected and the running config stays in force."""
        async with self._reload_lock:
            if self.config_path is None:
                return False, "no config file to reload (sandbox mode)"
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.metrics.reloads.labels("failure").inc()
                self.metrics.reload_success.set(0)
                log.error("reload rejected, the running config stays in force: %s", exc)
                return False, str(exc)
            for section in ("storage", "server"):
                if getattr(new, section) != getattr(self.config, section):
                    log.warning("reload: the changes under %s take effect at the next restart", section)
            if (
                new.wecom.proxy_url != self.config.wecom.proxy_url
                or new.wecom.ca_file != self.config.wecom.ca_file
            ):
                log.warning("reload: wecom.proxy_url and wecom.ca_file take effect at the next restart")
            gc.unfreeze()  # so that the replaced config and templates can be collected
            self.config = new
            self.router = Router(new)
            if self.dispatcher is not None:
                self.dispatcher.reload(new)
            freeze_heap()
            self.metrics.reloads.labels("success").inc()
            self.metrics.reload_success.set(1)
            log.info("reloaded %s: receivers %s", self.config_path, ", ".join(r.name for r in new.receivers))
            return True, "reloaded"

    def _admin_denied(self, request: Request, changes: bool) -> Response | None:
        """The answer that refuses an admin call, or None. `changes`: a POST that changes state, which
        must be JSON, so that a web page cannot make a browser send it (a form cannot set that type)."""
        server = self.config.server
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
            media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != _JSON:
                return error(415, "send the request with Content-Type: application/json")
        return None

    async def _admin_body(self, request: Request) -> Any:
        """An admin POST's JSON body ({} when empty); raises ValueError when it is not JSON."""
        try:
            body = await read_body(request, 1024 * 1024, self.config.server.body_timeout)
        except (BodyTooLarge, BodyTooSlow):
            raise ValueError("body too large or too slow") from None
        try:
            return json.loads(body) if body.strip() else {}
        except RecursionError:  # nested deeper than the parser goes
            raise ValueError("nested too deeply") from None

    async def reload_endpoint(self, request: Request) -> Response:
        denied = self._admin_denied(request, changes=True)
        if denied is not None:
            return denied
        ok, message = await self.reload()
        if ok:
            return JSONResponse({"status": "reloaded"})
        return error(400, f"reload rejected, the running config stays in force: {message}")

    def _admin_outbox(self, request: Request, changes: bool) -> Outbox | Response:
        """The outbox for an admin call, or the answer that refuses it."""
        denied = self._admin_denied(request, changes)
        if denied is not None:
            return denied
        return self.outbox if self.outbox is not None else error(503, "outbox not open")

    async def outbox_list(self, request: Request) -> Response:
        outbox = self._admin_outbox(request, changes=False)
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
        return JSONResponse(
            {
                "jobs": [
                    {
                        "id": j.id,
                        "receiver": j.receiver,
                        "state": j.state.value,
                        "target": json.loads(j.target),
                        "attempts": j.attempts,
                        "sent_parts": j.sent_parts,
                        "created_at": j.created_at,
                        "reason": j.reason,
                        "error": j.last_error,
                        "digest_of": j.digest_of,
                    }
                    for j in jobs
                ]
            }
        )

    async def outbox_retry(self, request: Request) -> Response:
        outbox = self._admin_outbox(request, changes=True)
        if isinstance(outbox, Response):
            return outbox
        usage = 'send {"ids": [1, 2]} (job ids, at most 10000) or {"all_dead": true}'
        try:
            body = await self._admin_body(request)
        except ValueError:
            return error(400, usage)
        if not isinstance(body, dict):
            return error(400, usage)
        ids: list[int] | None
        if body.get("all_dead") is True:
            ids = None
        else:
            raw = body.get("ids")
            if not (
                isinstance(raw, list)
                and len(raw) <= 10000
                and all(type(i) is int and 0 < i <= _MAX_ID for i in raw)
            ):
                return error(400, usage)
            ids = raw
        count = await outbox.requeue(ids, self.clock())
        if self.dispatcher is not None:
            self.dispatcher.wake(await outbox.pending_targets())
        return JSONResponse({"requeued": count})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def verify_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        for item in self.config.verify_files:
            if item.name == name:
                return Response(item.content.encode("utf-8"), media_type="text/plain")
        return PlainTextResponse("not found", status_code=404)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics_endpoint),
            Route("/alerts/{receiver}", self.alerts, methods=["POST"]),
            Route("/-/reload", self.reload_endpoint, methods=["POST"]),
            Route("/api/outbox", self.outbox_list, methods=["GET"]),
            Route("/api/outbox/retry", self.outbox_retry, methods=["POST"]),
        ]


def create_app(
    config: Config,
    client: httpx.AsyncClient | None = None,
    outbox: Outbox | None = None,
    extra_routes: list[BaseRoute] | None = None,
    config_path: str | None = None,
) -> Starlette:
    relay = Relay(config, client, outbox, config_path=config_path)
    # The verification files' route is last: it catches /<name> only where nothing else matched.
    routes = [*relay.routes(), *(extra_routes or []), Route("/{name}", relay.verify_file, methods=["GET"])]
    proxies = config.server.trusted_proxies
    # Without trusted proxies the caller is whoever connected: no layer on every request for that.
    middleware = [Middleware(TrustedProxies, proxies=proxies)] if proxies else []
    app = Starlette(routes=routes, lifespan=relay.lifespan, middleware=middleware)
    app.state.relay = relay
    return app
