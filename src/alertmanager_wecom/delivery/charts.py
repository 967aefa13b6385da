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
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.config import Config
from alertmanager_wecom.config.apis import ChartSettings, PrometheusAPI
from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.routes import Route
from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.outbound import api_client
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.rendering.escaping import label_text
from alertmanager_wecom.rendering.views import severity_rank
from alertmanager_wecom.wecom.api import WeComError

log = logging.getLogger(__name__)

MAX_WINDOW = 7 * 86400.0  # an alert firing for weeks is drawn over its last week


class ChartSkipped(Exception):
    """Why there is no chart (logged; never retried)."""


def chart_query(alert: Alert, annotation: str) -> str | None:
    """The annotation `annotation`, else the expression of a Prometheus graph link (``g0.expr``)."""
    given = alert.annotations.get(annotation, "").strip()
    if given:
        return given
    try:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(alert.generator_url).query)
    except ValueError:
        return None
    expr = query.get("g0.expr", [""])[0].strip()
    return expr or None


async def query_range(
    api: PrometheusAPI, expr: str, start: float, end: float, step: float
) -> list[chart.Series]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    try:
        async with api_client(api) as client:
            answer = await client.get(f"{api.url.rstrip('/')}/api/v1/query_range", params=params)
    except Exception as exc:  # timeouts, refused connections, TLS: all mean "no chart this time"
        raise ChartSkipped(f"Prometheus unreachable ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise ChartSkipped(f"Prometheus answered HTTP {answer.status_code}")
    try:
        data: Any = answer.json()
        result = data["data"]["result"]
        kind = data["data"]["resultType"]
    except (ValueError, KeyError, TypeError):
        raise ChartSkipped("Prometheus's answer is not a query_range result") from None
    if kind != "matrix" or not isinstance(result, list):
        raise ChartSkipped(f"Prometheus answered a {kind}, not a matrix")
    return chart.series_from_matrix(result)


class Charts:
    def __init__(
        self, services: Services, config: Callable[[], Config], clock: Callable[[], float] = time.time
    ):
        self.s = services
        self.config = config
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, job: Job, route: Route, notification: Notification) -> None:
        """Make and send the chart of a notification whose messages went out (firing, not a digest)."""
        if not route.target.chart or not notification.firing or self.s.stopping():
            return
        if notification.digest_of:
            # A digest is a backlog's summary: its alerts' text is all there is room for.
            self.s.metrics.charts.labels(route.kind, "skipped").inc()
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

    async def _chart(self, job: Job, route: Route, notification: Notification) -> None:
        try:
            png = await self.make(job.receiver, route, notification)
            await self.send(job, route, png)
        except ChartSkipped as exc:
            self.s.metrics.charts.labels(route.kind, "skipped").inc()
            log.info("no chart for receiver=%s job=%d: %s", job.receiver, job.id, exc)
        except WeComError as exc:
            self.s.metrics.charts.labels(route.kind, "failed").inc()
            log.warning("chart for receiver=%s job=%d not sent: %s", job.receiver, job.id, exc)
        except Exception:
            self.s.metrics.charts.labels(route.kind, "failed").inc()
            log.exception("chart for receiver=%s job=%d failed", job.receiver, job.id)

    async def make(self, receiver_name: str, route: Route, notification: Notification) -> bytes:
        config = self.config()
        settings: ChartSettings = config.charts
        api = config.prometheus_for(config.receiver(receiver_name))
        if api is None:
            raise ChartSkipped("no prometheus.url for this receiver")
        lead = sorted(notification.firing, key=severity_rank)[0]
        expr = chart_query(lead, settings.query_annotation)
        if expr is None:
            raise ChartSkipped(f"no {settings.query_annotation} annotation and no Prometheus graph link")
        end = self.clock()
        start = max(lead.started.timestamp() - settings.before, end - MAX_WINDOW)
        step = max(1.0, round((end - start) / settings.points))
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

    async def send(self, job: Job, route: Route, png: bytes) -> None:
        """Only with nothing else waiting for the target and room under its limits now: text first."""
        now = self.s.clock()
        if await self.s.outbox.pending_jobs(job.target_key, now, 1):
            raise ChartSkipped("alerts are waiting for this target: their text goes first")
        if self.s.limiter.wait_time(route.rate_keys) > 0:
            raise ChartSkipped("no room under WeCom's limits now: kept for alert text")
        at = self.s.limiter.record(route.rate_keys)
        await self.s.outbox.record_send(route.rate_keys, at)
        await route.channel.send_image(png)
        self.s.metrics.charts.labels(route.kind, "sent").inc()
        log.info(
            "chart sent receiver=%s job=%d target=%s bytes=%d",
            job.receiver,
            job.id,
            route.channel.name,
            len(png),
        )
