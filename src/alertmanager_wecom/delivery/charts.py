"""Charts after the alert's text (`chart: true`): the expression of the notification's leading alert,
queried from Prometheus (`prometheus:`, never the generator URL's host), drawn off the event loop, sent as
an image message.

The text always wins: a chart is made after its notification's messages went out, in the background; it
is sent only when its target has nothing else waiting and room under WeCom's limits right then (a chart
counts as a message), so in a backlog or a digest charts are the first thing dropped. Prometheus slow or
down: the chart is skipped with the reason logged, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.config import Config
from alertmanager_wecom.config.apis import ChartSettings, PrometheusAPI
from alertmanager_wecom.delivery.claims import claim_for, learn
from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.outbound import api_client
from alertmanager_wecom.outbox import Job, OutboxUnavailable
from alertmanager_wecom.reasons import DeliveryError
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.rendering.escaping import label_text
from alertmanager_wecom.rendering.views import severity_rank

log = logging.getLogger(__name__)

# A chart needs a few series of a few hundred points (kilobytes); an answer this large is a query that
# matches far too many series, and is not read into memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class ChartSkipped(Exception):
    """Why there is no chart (logged; never retried)."""


def chart_query(alert: Alert, annotation: str, from_annotation: bool = True) -> str | None:
    """The annotation `annotation` (unless not `from_annotation`: `prometheus.queries_from:
    generator_url`), else the expression of a Prometheus graph link (``g0.expr``)."""
    given = alert.annotations.get(annotation, "").strip() if from_annotation else ""
    if given:
        return given
    try:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(alert.generator_url).query)
    except ValueError:
        return None
    expr = query.get("g0.expr", [""])[0].strip()
    return expr or None


async def _get(api: PrometheusAPI, params: dict[str, str]) -> tuple[int, bytes]:
    """Status and body of a query_range, the body read only up to `MAX_ANSWER_BYTES`."""
    body = bytearray()
    try:
        async with (
            api_client(api) as client,
            client.stream("GET", f"{api.url.rstrip('/')}/api/v1/query_range", params=params) as answer,
        ):
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ChartSkipped(
                        f"Prometheus's answer is over {MAX_ANSWER_BYTES // 2**20} MB: the query matches "
                        "too many series for a chart"
                    )
            return answer.status_code, bytes(body)
    except ChartSkipped:
        raise
    except Exception as exc:  # timeouts, refused connections, TLS: all mean "no chart this time"
        raise ChartSkipped(f"Prometheus unreachable ({type(exc).__name__})") from None


async def query_range(
    api: PrometheusAPI, expr: str, start: float, end: float, step: float
) -> list[chart.Series]:
    params = {
        "query": expr,
        "start": f"{start:.3f}",
        "end": f"{end:.3f}",
        "step": f"{step:g}",
        # Prometheus's own limit for this query (seconds): past it Prometheus stops evaluating it, where
        # our client's timeout alone would only stop us waiting for it.
        "timeout": f"{api.timeout:g}",
    }
    status, body = await _get(api, params)
    if status != 200:
        try:
            error_type = str(json.loads(body).get("errorType", ""))[:40]
        except (ValueError, AttributeError):
            error_type = ""
        raise ChartSkipped(f"Prometheus answered HTTP {status}" + (f" ({error_type})" if error_type else ""))
    try:
        data: Any = json.loads(body)
        result = data["data"]["result"]
        result_type = data["data"]["resultType"]
    except (ValueError, KeyError, TypeError):
        raise ChartSkipped("Prometheus's answer is not a query_range result") from None
    if result_type != "matrix" or not isinstance(result, list):
        raise ChartSkipped(f"Prometheus answered a {result_type}, not a matrix")
    return chart.series_from_matrix(result)


class Charts:
    def __init__(
        self, services: Services, config: Callable[[], Config], clock: Callable[[], float] = time.time
    ):
        self.s = services
        self.config = config
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, job: Job, route: TargetRoute, notification: Notification) -> None:
        """Make and send the chart of a notification whose messages went out (firing, not a digest)."""
        if not route.target.chart or not notification.firing or self.s.stopping():
            return
        if notification.digest_of:
            # A digest is a backlog's summary: its alerts' text is all there is room for.
            self.s.metrics.charts.labels(route.channel_label, "skipped").inc()
            log.info(
                "no chart for receiver=%s job=%d: a digest (backlog) sends text only", job.receiver, job.id
            )
            return
        task = asyncio.get_running_loop().create_task(self._chart(job, route, notification))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _chart(self, job: Job, route: TargetRoute, notification: Notification) -> None:
        try:
            png = await self.make(job.receiver, route, notification)
            await self.send(job, route, png)
        except ChartSkipped as exc:
            self.s.metrics.charts.labels(route.channel_label, "skipped").inc()
            log.info("no chart for receiver=%s job=%d: %s", job.receiver, job.id, exc)
        except DeliveryError as exc:
            self.s.metrics.charts.labels(route.channel_label, "failed").inc()
            log.warning("chart for receiver=%s job=%d not sent: %s", job.receiver, job.id, exc)
        except Exception:
            self.s.metrics.charts.labels(route.channel_label, "failed").inc()
            log.exception("chart for receiver=%s job=%d failed", job.receiver, job.id)

    async def make(self, receiver_name: str, route: TargetRoute, notification: Notification) -> bytes:
        config = self.config()
        settings: ChartSettings = config.charts
        api = config.prometheus_for(config.receiver(receiver_name))
        if api is None:
            raise ChartSkipped("no prometheus.url for this receiver")
        lead = sorted(notification.firing, key=severity_rank)[0]
        from_annotation = api.queries_from == "annotation_or_generator_url"
        expr = chart_query(lead, settings.query_annotation, from_annotation)
        if expr is None:
            raise ChartSkipped(
                f"no {settings.query_annotation} annotation and no Prometheus graph link"
                if from_annotation
                else "no Prometheus graph link (prometheus.queries_from: generator_url: annotations "
                "choose no query)"
            )
        start, end, step = chart.query_window(
            lead.started.timestamp(), self.clock(), settings.before, settings.max_range, settings.points
        )
        try:
            series = await asyncio.wait_for(
                query_range(api, chart.strip_comparison(expr), start, end, step), api.timeout + 1
            )
        except TimeoutError:
            raise ChartSkipped("Prometheus did not answer in time") from None
        if not any(one.points for one in series):
            raise ChartSkipped("the query returned no data")
        title = label_text(lead.name) + (
            f" · {label_text(lead.labels['instance'])}" if "instance" in lead.labels else ""
        )
        time_zone = route.target.time_zone or config.render.time_zone
        return await self.s.cpu.run(
            chart.draw,
            title,
            series,
            lead.started.timestamp(),
            chart.threshold(expr),
            time_zone,
            settings.max_series,
        )

    async def send(self, job: Job, route: TargetRoute, png: bytes) -> None:
        """Only with nothing else waiting for the target and room under its limits now: text first."""
        now = self.s.clock()
        if await self.s.outbox.pending_jobs(job.target_key, now, 1):
            raise ChartSkipped("alerts are waiting for this target: their text goes first")
        if self.s.limiter.wait_time(route.rate_keys) > 0:
            raise ChartSkipped("no room under WeCom's limits now: kept for alert text")
        counted: tuple[str, ...] = ()
        if self.s.outbox.shared:
            # Replicas: the room is decided in the shared ledger, counting every replica's sends to the
            # same person and under the same app (this replica's limiter knows only its own).
            ahead = await self.s.outbox.claim_send(now, claim_for(self.s, job, route))
            if ahead.wait > 0:
                learn(self.s, ahead)
                raise ChartSkipped(
                    "no room under WeCom's limits now (sends by other replicas): kept for alert text"
                )
            self.s.limiter.record(route.rate_keys, now)
            counted = ahead.counted
        else:
            at = self.s.limiter.record(route.rate_keys)
            await self.s.outbox.record_send(route.rate_keys, at)
        await route.channel.send_image(png)
        if counted:
            # WeCom has it now: it counts from here, not from the claim (the image was uploaded first).
            with contextlib.suppress(OutboxUnavailable):  # the chart is sent; the ledger errs early
                await self.s.outbox.sent(counted, self.s.clock())
        self.s.metrics.charts.labels(route.channel_label, "sent").inc()
        log.info(
            "chart sent receiver=%s job=%d target=%s bytes=%d",
            job.receiver,
            job.id,
            route.channel.name,
            len(png),
        )
