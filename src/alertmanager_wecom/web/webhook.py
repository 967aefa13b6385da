"""The webhook: ``POST /alerts/{receiver}`` → the durable outbox, then the dispatcher is woken.

Answers: 200 once the notification is committed to the outbox (or recognised as an HA duplicate);
4xx with a JSON reason for bad requests (never a 5xx for user input); 503 when it cannot be stored
durably or the service is shutting down, so that Alertmanager keeps it and retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from prometheus_client import Counter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alertmanager_wecom.ingest.dedup import dedup_key
from alertmanager_wecom.ingest.payload import (
    LARGE_BODY,
    InvalidTime,
    Webhook,
    alert_instants,
    collector_paused,
    parse_notification,
    validate_webhook,
)
from alertmanager_wecom.outbox import NewJob, OutboxUnavailable
from alertmanager_wecom.tracing import NO_SPAN, Span, Tracing
from alertmanager_wecom.web.answers import JSON, BodyTooLarge, BodyTooSlow, body_too_slow, error, read_body
from alertmanager_wecom.web.auth import authorized, challenge, may_list_receivers
from alertmanager_wecom.web.incident_intake import IncidentUnavailable, after_accept, before_accept
from alertmanager_wecom.web.relay import Relay

log = logging.getLogger(__name__)

# State the dispatcher keeps in a stored notification (a digest's bookkeeping): never from a request.
_INTERNAL_FIELDS = ("digest_of", "digest_max_messages", "digest_groups")


class InternalFields(Exception):
    """The webhook sets fields that are the relay's own bookkeeping (digests): refused."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def _validation_message(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        out.append(f"{loc}: {err['msg']}")
    return out


class WebhookEndpoint:
    """``POST /alerts/{receiver}``: authenticate, read, validate, route, commit, answer. Reads the
    relay's current config, router, outbox and dispatcher on each request (a reload replaces them)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.metrics = relay.metrics
        self._accepted_counters: dict[str, Counter] = {}

    def _accepted(self, receiver: str) -> Counter:
        """The receiver's accepted-notifications counter, looked up once (labels() takes a lock)."""
        counter = self._accepted_counters.get(receiver)
        if counter is None:
            counter = self._accepted_counters[receiver] = self.metrics.notifications.labels(
                receiver, "accepted"
            )
        return counter

    async def handle(self, request: Request) -> Response:
        tracing = self.relay.tracing
        if not tracing.enabled:
            return await self._handle(request, NO_SPAN)
        return await self._traced(tracing, request)

    async def _traced(self, tracing: Tracing, request: Request) -> Response:
        """The webhook in a server span that continues the caller's trace: Alertmanager (0.30+) sends a
        W3C traceparent. Its own traceparent goes into the outbox with each job (see `_handle`)."""
        with tracing.span(
            "POST /alerts/{receiver}",
            parent=request.headers.get("traceparent"),
            kind="server",
            attributes={"http.request.method": "POST", "http.route": "/alerts/{receiver}"},
        ) as span:
            response = await self._handle(request, span)
            span.set("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.fail(f"HTTP {response.status_code}")
            return response

    async def _handle(self, request: Request, span: Span) -> Response:
        name = request.path_params["receiver"]
        relay = self.relay
        config = relay.config
        receiver = config.receiver(name)
        if receiver is None:
            if not may_list_receivers(relay.config, request.headers.get("authorization")):
                # The names are config a stranger has no business reading (they say what is monitored).
                return error(404, "no such receiver")
            return error(
                404,
                f"unknown receiver {name!r}: post to /alerts/<name> with a name from the config",
                receivers=[r.name for r in config.receivers],
            )
        span.set("alertmanager_wecom.receiver", name)
        auth = config.auth_for(receiver)
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
                jobs, key, webhook = self._prepare(name, body)
            else:
                # Thousands of alerts: worked through in a thread, in pieces, so that the event loop goes
                # on answering meanwhile (see payload.py).
                jobs, key, webhook = await asyncio.to_thread(self._prepare_large, name, body)
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
        traceparent = span.traceparent
        if traceparent is not None:
            jobs = [dataclasses.replace(job, traceparent=traceparent) for job in jobs]
        if relay.draining or relay.outbox is None or relay.dispatcher is None:
            self.metrics.notifications.labels(name, "unavailable").inc()
            return error(503, "shutting down; retry")
        try:
            jobs, intake = await before_accept(
                relay.oncall, config, receiver, webhook, body, jobs, relay.clock(), self.metrics
            )
        except IncidentUnavailable as exc:
            self.metrics.notifications.labels(name, "unavailable").inc()
            return error(503, f"cannot record the incident durably ({exc}); retry")
        try:
            result = await relay.outbox.accept(name, jobs, key, config.delivery.dedup_window, relay.clock())
        except OutboxUnavailable as exc:
            self.metrics.notifications.labels(name, "unavailable").inc()
            if not exc.logged:  # else the backend logs the outage, once a minute
                log.error("cannot store a notification for receiver %s: %s", name, exc)
            return error(503, f"cannot store the notification durably ({exc}); retry")
        if result.duplicate:
            self.metrics.notifications.labels(name, "duplicate").inc()
            self.metrics.dedup_hits.labels(name).inc()
            log.info("duplicate notification for receiver %s (another Alertmanager replica sent it)", name)
            return JSONResponse({"status": "duplicate"})
        await after_accept(relay.oncall, intake, name)
        self._accepted(name).inc()
        span.set("alertmanager_wecom.notification_id", result.notification_id or 0)
        relay.dispatcher.wake(job.target_key for job in jobs if job.dead_reason is None)
        # Written out: this answer is on every webhook's path, and it needs no JSON encoder.
        return Response(b'{"status":"accepted","id":%d}' % (result.notification_id or 0), media_type=JSON)

    def _prepare_large(self, name: str, body: bytes) -> tuple[list[NewJob], str, Webhook]:
        with collector_paused():
            jobs, key, webhook = self._prepare(name, body)
        # As UTF-8, here rather than when they are sent to the ingest child, on the event loop.
        encoded: dict[int, bytes] = {}  # targets that share a payload keep sharing it
        for index, job in enumerate(jobs):
            if isinstance(job.payload, str):
                if id(job.payload) not in encoded:
                    encoded[id(job.payload)] = job.payload.encode()
                jobs[index] = dataclasses.replace(job, payload=encoded[id(job.payload)])
        return jobs, key, webhook

    def _prepare(self, name: str, body: bytes) -> tuple[list[NewJob], str, Webhook]:
        """The webhook's jobs and dedup key (and the checked body): its CPU work before the commit. The body
        goes to the outbox as it came (UTF-8: the ingest child decodes it)."""
        # One pass in pydantic's core (Rust) parses and checks the body: the hot path of every webhook.
        webhook = validate_webhook(body)
        internal = [field for field in _INTERNAL_FIELDS if field in webhook]
        if internal:
            raise InternalFields(internal)
        instants = alert_instants(webhook)
        router = self.relay.router
        jobs = router.route_whole(name, body, len(webhook["alerts"]))
        if jobs is None:  # targets that route by alert need the model
            jobs = router.route(name, parse_notification(body), body)
        return jobs, dedup_key(name, webhook, instants), webhook

    def _too_large(self, receiver: str, request: Request) -> Response:
        """413, which Alertmanager does not retry: the alerts are lost unless someone acts, so say how."""
        limit = self.relay.config.server.max_body_bytes
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
