"""The running service's state: one `Relay` holds the config (replaced by a reload), the router, the
outbox and the dispatcher (started and stopped with the app), and answers health, readiness, metrics
and the domain verification files. The webhook (web/webhook.py) and the admin endpoints (web/admin.py)
read it; `create_app` (web/app.py) wires them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom import __version__
from alertmanager_wecom.actions.acknowledge import Acknowledgements
from alertmanager_wecom.actions.cards import CardActions
from alertmanager_wecom.actions.opening import open_card_store
from alertmanager_wecom.config import Config, ConfigError
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import load_config
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.oncall.opening import open_oncall_store
from alertmanager_wecom.oncall.store import OncallStore
from alertmanager_wecom.outbox import Outbox, OutboxUnavailable
from alertmanager_wecom.outbox.opening import open_outbox
from alertmanager_wecom.tracing import OFF, Tracing, start_tracing
from alertmanager_wecom.web.auth import may_list_receivers
from alertmanager_wecom.web.hosts import HostPolicy
from alertmanager_wecom.wecom.api import http_client
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger(__name__)
READY_STATS_SECONDS = 1.0  # /readyz answers within a few seconds, whatever the outbox does


def wecom_client(config: Config) -> httpx.AsyncClient:
    return http_client(config.wecom)


# Container objects allocated (less those freed) between two young collections: Python's default is
# 700. A webhook allocates hundreds (its validated body) that reference counting frees at its answer, but
# the 16-odd webhooks awaiting their commit keep the count near 700 under load, and each young collection
# walks their objects. Measured with gc.callbacks over bench/ingest.py's no-op and Redis /alerts runs
# (c=16, 8 s each): 1,500 collections of all generations, 0.27 s, at 700; 15 and 0.05 s at 10,000, and
# /alerts made 3221 and 3277 requests/s against 3035 and 3057.
YOUNG_COLLECTION_THRESHOLD = 10_000


def freeze_heap() -> None:
    """Put what is alive now (modules, config, compiled templates and schemas) out of the collector's
    reach. Webhooks awaiting their commit keep request objects alive across young collections, so they
    reach the oldest generation and trigger full collections every few seconds under load; each walked
    the whole start-up heap (25 ms on the test machine) and was the webhook's p99. Frozen, a full
    collection walks only what was allocated since (2 ms). Young collections run less often too."""
    gc.collect()
    gc.freeze()
    _young, *older = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *older)


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
        self.cards: CardActions | None = None
        # Schedules' overrides and incidents (oncall/store.py), beside the outbox; acknowledging by any
        # way (actions/acknowledge.py).
        self.oncall: OncallStore | None = None
        self.acks = Acknowledgements(
            lambda: self.oncall, lambda: self.cards, lambda: self.config, self.metrics, self.clock
        )
        # What parts of the app started besides the relay's own (the console's preview worker): stopped
        # when the service stops.
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        # The hosts this service answers for (web/hosts.py); create_app sets them from where it listens.
        self.hosts = HostPolicy.for_config(config)
        # Traces (tracing/): started with the app, OFF until then and without tracing.endpoint.
        self.tracing: Tracing = OFF

    def _card_actions(self) -> CardActions | None:
        """Cards are remembered, and clicks acted on, when an app has a callback URL (card buttons need
        one): in the card store beside the outbox (its Redis, or a file beside its file). They plug into
        delivery through its `CardHooks`; their tokens are the dispatcher's (made just after)."""
        if not any(app.callback is not None for app in self.config.apps.values()):
            return None
        store = open_card_store(self.config.storage)

        def token(app: str) -> AccessToken:
            assert self.dispatcher is not None
            return self.dispatcher.app_token(app)

        cards = CardActions(store, lambda: self.config, token, self.metrics, self.clock)
        cards.tracing, cards.traceparent_of = self.tracing, self._traceparent_of
        return cards

    async def _traceparent_of(self, job_id: int) -> str | None:
        """The trace a card's click continues: its job's (None once the job is purged, or while the outbox
        cannot be read: the click is acted on all the same)."""
        try:
            job = await self.outbox.get_job(job_id) if self.outbox is not None else None
        except OutboxUnavailable:
            return None
        return job.traceparent if job is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        client = self._client or wecom_client(self.config)
        outbox = self._outbox or open_outbox(self.config.storage, self.metrics.ingest_writer_exits.inc)
        self.outbox = outbox
        self.metrics.outbox_backend.labels("redis" if outbox.shared else "sqlite").set(1)
        if outbox.shared:
            from alertmanager_wecom.outbox.redis import RedisOutbox  # loaded already: the outbox is one

            if isinstance(outbox, RedisOutbox) and (warning := await outbox.durability_warning()):
                log.warning("%s", warning)
        self.tracing = start_tracing(self.config.tracing)
        if self.tracing.enabled:
            where = self.config.tracing
            log.info("tracing: spans to %s (sampling_fraction %g)", where.url, where.sampling_fraction)
        self.cards = self._card_actions()
        self.oncall = open_oncall_store(self.config.storage)
        if self.cards is not None:
            self.acks.plug_into(self.cards)
        self.dispatcher = Dispatcher(
            self.config,
            outbox,
            client,
            clock=self.clock,
            metrics=self.metrics,
            cards=self.cards,
            oncall=self.oncall,
        )
        self.dispatcher.services.tracing = self.tracing
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
            if self.cards is not None:
                await self.cards.drain()
                await self.cards.store.close()
            if self.oncall is not None:
                await self.oncall.close()
            for stop in self.on_stop:
                await stop()
            if self._outbox is None:
                await outbox.close()
            if self._client is None:
                await client.aclose()
            # Last, so that the spans of the sends finished above are exported too.
            tracing, self.tracing = self.tracing, OFF
            await asyncio.to_thread(tracing.shutdown)
            log.info("stopped; undelivered notifications stay in the outbox for the next start")

    async def index(self, request: Request) -> Response:
        about: dict[str, object] = {"service": "alertmanager-wecom", "version": __version__}
        if may_list_receivers(self.config, request.headers.get("authorization")):
            about["receivers"] = {r.name: f"/alerts/{r.name}" for r in self.config.receivers}
        return JSONResponse(about)

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
        problem = await self.outbox.check_writable(now)  # bounded in time by each backend
        if problem is not None:
            problems.append(f"cannot accept notifications: {problem}")
        if not problems:  # the counts are for a ready answer: a failing outbox is not asked twice
            try:
                stats = await asyncio.wait_for(self.outbox.stats(now), READY_STATS_SECONDS)
            except TimeoutError:
                problems.append(f"the outbox did not answer a read within {READY_STATS_SECONDS:g}s")
            except OutboxUnavailable as exc:
                problems.append(str(exc))
            else:
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
            for section in ("storage", "server", "tracing"):
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
        ]
