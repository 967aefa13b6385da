"""The dispatcher: takes jobs from the outbox and delivers them, paced, coalesced, retried.

Per target (one receiver target: a channel and its recipients), jobs are delivered in order, one
message at a time, each message waiting for room under WeCom's frequency limits.  When the backlog of a
target needs more messages than its limits let through now, the queued notifications are merged into
one digest (persisted first, so that a crash mid-digest resumes the same digest).  Transient failures
back off the whole target exponentially with jitter, up to `max_age`; permanent ones go to the dead
letters with the reason and its fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import httpx

from alertmanager_wecom.channels import Channel, build_channel, kind_of
from alertmanager_wecom.config import Config, Target, parse_target
from alertmanager_wecom.delivery import digest
from alertmanager_wecom.delivery.pacing import RateLimiter
from alertmanager_wecom.ingest.payload import (
    LARGE_BODY,
    Notification,
    collector_paused,
    dump_notification,
    parse_notification,
)
from alertmanager_wecom.ingest.recipients import Budget, refusal, summarize
from alertmanager_wecom.ingest.routing import configured_target_keys
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import Job, JobState, Outbox
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.rendering.renderer import Renderer, TemplateError
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.errcodes import Reason
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger("alertmanager_wecom.delivery.dispatcher")

MAINTENANCE_SECONDS = 600.0
GAUGE_SECONDS = 2.0
DIGEST_MAX_MESSAGES = 40  # even with budget to spare, a digest is at most this many messages
# The backlog is read a page at a time: reading and parsing hundreds of payloads at once held the
# interpreter long enough to show in the webhook's p99 (20 ms and more at 2,500 requests/s).
_PAGE = 100
P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Route:
    target: Target
    renderer: Renderer
    channel: Channel
    rate_keys: list[str]
    kind: str  # app | chat | robot: the channel label of metrics
    label: str  # app:NAME or robot:NAME: a bounded metrics label (no recipients)
    last_send: float = 0.0


def _paused_if_large(jobs: list[Job]) -> contextlib.AbstractContextManager[None]:
    """The collector paused while a large notification is parsed and rendered (see payload.py)."""
    large = any(len(job.payload) > LARGE_BODY for job in jobs)
    return collector_paused() if large else contextlib.nullcontext()


def route_receiver(jobs: list[Job]) -> str:
    return jobs[0].receiver if jobs else ""


def render_messages(
    target: Target,
    renderer: Renderer,
    notification: Notification,
    refused: Callable[[str], None] | None = None,
) -> list[Message]:
    """What one target sends for one notification (its resolved alerts dropped if send_resolved is off).
    `refused` hears, once per call, which mentions from alert data were refused and why."""
    if not target.send_resolved:
        firing = notification.firing
        if not firing:
            return []
        notification = notification.model_copy(update={"alerts": firing})
    users, mobiles, problems = mentions_for(target, notification)
    shown = renderer.mentions_that_fit(users)
    if len(shown) < len(users):
        problems.append(f"{len(users) - len(shown)} mentions left out: they would take over half the message")
        users = shown
    if problems and refused is not None:
        refused(summarize(problems))
    return renderer.render(
        notification,
        max_messages=notification.digest_max_messages or None,
        mentions=(users, mobiles),
    )


def mentions_for(target: Target, notification: Notification) -> tuple[list[str], list[str], list[str]]:
    """Who a robot message @mentions: the target's list (as written: may be @all) and, from the alerts'
    labels/annotations, values that are each exactly one valid userid, at most `max_mentions` of them.
    Returns (userids, mobiles, problems)."""
    users = list(target.mention)
    problems: list[str] = []
    budget = Budget(target.max_mentions)
    for source in target.mention_from:
        kind, _, name = source.partition(".")
        for alert in notification.alerts:
            value = (alert.labels if kind == "labels" else alert.annotations).get(name, "").strip()
            if not value:
                continue  # nobody named: nothing to refuse
            why = refusal("mention", value)
            if why is not None:
                problems.append(f"{source} {why}")
            elif not budget.admit(value):
                problems.append(f"{source}: more than {budget.limit} distinct mentions (target max_mentions)")
            else:
                users.append(value)
    return list(dict.fromkeys(users)), list(dict.fromkeys(target.mention_mobile)), problems


class Dispatcher:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.settings = config.delivery
        self.outbox = outbox
        self.client = client
        self.metrics = metrics or Metrics()
        self.api = WeComAPI(config.wecom.api_url, client)
        self.clock = clock
        self.sleep = sleep
        self.tokens: dict[str, AccessToken] = {}
        self.limiter = RateLimiter(clock)
        self._routes: dict[str, Route] = {}
        self._configured = configured_target_keys(config)
        # Targets that may have pending jobs: the configured ones, and any left from an earlier config.
        self._targets: set[str] = set(self._configured)
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._cooldown: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_maintenance = 0.0
        self._last_gauges = 0.0
        # Parsing and rendering hold the GIL in turns of 5 ms; with one such thread per busy target (up
        # to `workers`), the event loop queued behind all of them for each of its turns (/healthz took
        # 100 ms while 50 notifications of 400 alerts were rendered). One at a time is as fast (the GIL
        # lets one run anyway) and leaves the loop one thread to wait for.
        self._cpu = asyncio.Semaphore(1)

    def reload(self, config: Config) -> None:
        """Use a new config from now on. Jobs already queued keep their target; tasks in flight finish
        with the route they have; tokens are fetched again (the secret may have changed)."""
        self.config = config
        self.settings = config.delivery
        self.api = WeComAPI(config.wecom.api_url, self.client)
        self.tokens = {}
        self._routes = {}
        self._configured = configured_target_keys(config)
        self._targets |= self._configured
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        # Sends of the last day count against the limits after a restart too.
        for key, at in await self.outbox.recent_sends(self.clock() - 86400):
            self.limiter.record([key], at)
        self._targets |= set(await self.outbox.pending_targets())
        self._main = asyncio.create_task(self._run(), name="dispatcher")

    def wake(self, target_keys: Iterable[str] = ()) -> None:
        """New jobs were committed (for these targets: routing can make targets that no config names)."""
        self._targets.update(target_keys)
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    async def stop(self, grace: float = 30.0) -> None:
        """Finish the messages in flight, then return; what is still queued stays in the outbox."""
        self._stopping = True
        self._wake.set()
        pending = [t for t in (self._main, *self._tasks) if t is not None]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)

    # -- the loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                wait = await self._round()
            except Exception:
                log.exception("dispatcher round failed; retrying")
                wait = self.settings.poll_interval
            await self._idle(wait)

    async def _round(self) -> float:
        """Start a task for each target with due jobs; return how long to wait before the next round."""
        now = self.clock()
        if now - self._last_maintenance > MAINTENANCE_SECONDS:
            self._last_maintenance = now
            await self._maintain(now)
        if now - self._last_gauges > GAUGE_SECONDS:
            self._last_gauges = now
            stats = await self.outbox.stats(now)
            self.metrics.outbox_pending.set(stats.pending)
            self.metrics.outbox_dead.set(stats.dead)
            self.metrics.outbox_oldest.set(stats.oldest_pending_age)
        wait = self.settings.poll_interval
        idle = [k for k in self._targets if k not in self._busy]
        if not idle:
            return wait  # every target is being worked on; a finishing task wakes the loop
        for key, due in (await self.outbox.next_due(idle)).items():
            if due is None:
                if key not in self._configured:
                    self._targets.discard(key)
                continue
            due = max(due, self._cooldown.get(key, 0.0))
            if due > now:
                wait = min(wait, due - now)
                continue
            if len(self._busy) >= self.settings.workers:
                break  # a finishing task wakes the loop
            self._cooldown.pop(key, None)
            self._busy.add(key)
            task = asyncio.create_task(self._process_target(key), name=f"target-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return wait

    async def _idle(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        if self._wake.is_set():
            # Woken by new notifications: let a burst of them land first, so one round serves them all.
            await asyncio.sleep(0.01)
        self._wake.clear()

    async def _maintain(self, now: float) -> None:
        retention = self.config.storage.retention
        await self.outbox.purge([JobState.DONE, JobState.MERGED, JobState.DEAD], now - retention)
        await self.outbox.forget_dedup(now - self.settings.dedup_window)
        await self.outbox.prune_sends(now - 86400)

    # -- one target -----------------------------------------------------------------------------------

    async def _process_target(self, key: str) -> None:
        try:
            while not self._stopping:
                jobs = await self.outbox.pending_jobs(key, self.clock(), _PAGE)
                if not jobs:
                    return
                try:
                    route = self._route(jobs[0].target)
                except Exception as exc:  # nothing retrying can fix: a target or template that is gone
                    # Queued under a config that named an app or robot the current one does not.
                    for job in jobs:
                        await self.outbox.dead(job.id, f"cannot deliver: {exc}", "config", self.clock())
                        self.metrics.dead_letters.labels(job.receiver, "config").inc()
                    log.error(
                        "jobs whose target cannot be used (gone from the config, or broken) were moved to the dead letters: %s",
                        exc,
                    )
                    continue
                started = next((j for j in jobs if j.sent_parts > 0 or j.inflight), None)
                if started is not None:
                    # A partly sent job is finished first, alone, exactly as it was split.
                    if not await self._deliver(started, route):
                        return
                    continue
                if not await self._deliver_backlog(jobs, route):
                    return
        except Exception:
            log.exception("delivery to target %s failed unexpectedly; will retry", key)
            self._cooldown[key] = self.clock() + max(5.0, self.settings.poll_interval)
        finally:
            self._busy.discard(key)
            self._wake.set()

    async def _deliver_backlog(self, jobs: list[Job], route: Route) -> bool:
        available = self.limiter.available(route.rate_keys)
        # Keep a third of a minute's room for digests, so that a storm's first digest goes out at once
        # instead of after the window has been spent on single notifications.
        reserve = self.limiter.capacity(route.rate_keys) // 3
        # Rendering is needed to count messages only when the jobs alone do not already exceed the room.
        fits = False
        if len(jobs) <= available - reserve:
            count, failed = await self._in_thread(self._count_messages, route, jobs)
            if failed:
                # A job that cannot be rendered is a dead letter; the jobs behind it go on.
                for job, detail in failed:
                    await self._dead(job, route, Reason.BAD_MESSAGE.value, detail)
                return True
            fits = count <= available - reserve
        if fits:
            for job in jobs:
                if not await self._deliver(job, route):
                    return False
            return True
        if available <= 0:
            # No room now: wait, then merge whatever has queued up by then.
            return await self._wait_for_room(route)
        # In a storm, digests are spaced by a fair share of the minute, so that each carries what
        # arrived meanwhile instead of spending the room on many small ones.
        linger = 60.0 / max(1, self.limiter.capacity(route.rate_keys)) - (self.clock() - route.last_send)
        if linger > 0:
            if self._stopping:
                return False
            await self.sleep(linger)
            return True  # read the backlog again: more may have queued up
        chosen, merged, payload, alerts = await self._build_digest(jobs)
        digest_job = await self.outbox.merge(chosen, payload, merged.digest_of, self.clock())
        self.metrics.digests.labels(route_receiver(jobs)).inc()
        log.info(
            "coalesced %d notifications (%d alerts) for %s into digest job %d",
            len(chosen),
            alerts,
            route.channel.name,
            digest_job.id,
        )
        # The merged notification is at hand: parsing its stored form again (megabytes in a storm) is
        # left to a restart that resumes the digest.
        return await self._deliver(digest_job, route, merged)

    async def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._cpu:
            return await asyncio.to_thread(fn, *args, **kwargs)

    @staticmethod
    def _notification(job: Job) -> Notification:
        return parse_notification(job.payload)  # in pieces when large: see payload.py

    # Parsing, merging and rendering are CPU work: they run in a thread so that the event loop keeps
    # answering webhooks with low latency while a storm is being digested.

    def _count_messages(self, route: Route, jobs: list[Job]) -> tuple[int, list[tuple[Job, str]]]:
        """Messages the jobs need, and the jobs that cannot be rendered at all, with why."""
        total = 0
        failed: list[tuple[Job, str]] = []
        with _paused_if_large(jobs):
            for job in jobs:
                try:
                    total += len(self._messages(route, self._notification(job)))
                except Exception as exc:
                    failed.append((job, f"cannot render: {_describe(exc)}"))
        return total, failed

    async def _build_digest(self, first_page: list[Job]) -> tuple[list[Job], Notification, str, int]:
        """The oldest notifications of the backlog, up to `digest_max_alerts` alerts, merged: read and
        parsed a page at a time, so that webhooks are answered in between."""
        chosen: list[Job] = []
        notifications: list[Notification] = []
        alerts = 0
        page = first_page
        while page:
            parsed = await self._in_thread(self._parse, page)
            for job, notification in zip(page, parsed, strict=True):
                if isinstance(notification, str):  # a stored payload that cannot be read: not merged
                    await self.outbox.dead(job.id, notification, Reason.BAD_MESSAGE.value, self.clock())
                    self.metrics.dead_letters.labels(job.receiver, Reason.BAD_MESSAGE.value).inc()
                    log.error("job %d moved to the dead letters: %s", job.id, notification)
                    continue
                if chosen and alerts + len(notification.alerts) > self.settings.digest_max_alerts:
                    page = []
                    break
                chosen.append(job)
                notifications.append(notification)
                alerts += len(notification.alerts)
            else:
                if len(page) < _PAGE:
                    break
                page = await self.outbox.pending_jobs(page[0].target_key, self.clock(), _PAGE, page[-1].id)
        merged, payload = await self._in_thread(self._merge, notifications)
        return chosen, merged, payload, alerts

    @classmethod
    def _parse(cls, jobs: list[Job]) -> list[Notification | str]:
        """Each job's notification, or why it cannot be read."""
        out: list[Notification | str] = []
        for job in jobs:
            try:
                out.append(cls._notification(job))
            except Exception as exc:
                out.append(f"cannot read the stored notification: {_describe(exc)}")
        return out

    @staticmethod
    def _merge(notifications: list[Notification]) -> tuple[Notification, str]:
        merged = digest.merge(notifications)
        # As many messages as it takes to show every alert (sent as the limits allow), up to a bound.
        merged.digest_max_messages = DIGEST_MAX_MESSAGES
        return merged, dump_notification(merged)

    def _render_job(self, route: Route, job: Job, notification: Notification | None) -> list[Message]:
        with _paused_if_large([job]):
            return self._messages(route, notification or self._notification(job), job)

    def _messages(self, route: Route, notification: Notification, job: Job | None = None) -> list[Message]:
        """The messages for one notification. A user template that fails on these alerts (a label it
        expects is missing, say) is logged and the package's template shows them instead: the alerts
        matter more than their layout. `job`: the job being delivered (then refused mentions are logged)."""

        def refused(problems: str) -> None:
            if job is not None:
                log.warning(
                    "receiver %s job %d: mentions from alert data refused: %s", job.receiver, job.id, problems
                )

        try:
            return render_messages(route.target, route.renderer, notification, refused)
        except Exception as exc:
            if not route.renderer.custom_templates:
                raise
            log.error(
                "target %s: its template failed (%s); sent with the built-in template instead",
                route.channel.name,
                _describe(exc),
            )
            return render_messages(route.target, route.renderer.with_builtin_templates(), notification)

    async def _deliver(self, job: Job, route: Route, notification: Notification | None = None) -> bool:
        """Send the job's remaining messages (`notification`: the job's payload, already parsed).
        False: stop working on this target for now."""
        try:
            messages = await self._in_thread(self._render_job, route, job, notification)
        except Exception as exc:  # nothing will fix this message: a dead letter, and the next job goes on
            await self._dead(job, route, Reason.BAD_MESSAGE.value, f"cannot render: {_describe(exc)}")
            return True
        for index in range(job.sent_parts, len(messages)):
            # Shutting down: stop between messages; the job resumes at this part after the restart.
            if self._stopping or not await self._wait_for_room(route):
                return False
            at = route.last_send = self.limiter.record(route.rate_keys)
            await self.outbox.sending(job.id, self.clock())  # write-ahead: see Job.inflight
            try:
                result = await route.channel.send(messages[index])
            except WeComError as exc:
                self.limiter.forget(route.rate_keys, at)
                self.metrics.messages_failed.labels(
                    job.receiver, route.kind, route.label, exc.reason.value
                ).inc()
                if exc.retryable:
                    return await self._retry_later(job, route, exc)
                await self._dead(job, route, exc.reason.value, exc.detail)
                return True
            self.metrics.messages_sent.labels(job.receiver, route.kind, route.label).inc()
            now = self.clock()
            await asyncio.gather(
                self.outbox.progress(job.id, index + 1, now), self.outbox.record_send(route.rate_keys, at)
            )
            for kind, names in result.invalid.items():
                log.warning(
                    "WeCom did not deliver to %s %s via %s: not found or outside the app's visible range "
                    "(可见范围)",
                    kind.removeprefix("invalid"),
                    "|".join(names),
                    route.channel.name,
                )
        await self.outbox.done(job.id, self.clock())
        if messages:
            self.metrics.latency.labels(route.kind).observe(max(0.0, self.clock() - job.created_at))
        log.info(
            "delivered receiver=%s target=%s job=%d messages=%d%s",
            job.receiver,
            route.channel.name,
            job.id,
            len(messages),
            f" digest_of={job.digest_of}" if job.digest_of else "",
        )
        return True

    async def _wait_for_room(self, route: Route) -> bool:
        waited = False
        while True:
            wait = self.limiter.wait_time(route.rate_keys)
            if wait <= 0:
                return True
            if self._stopping:
                return False
            if not waited:
                self.metrics.rate_limit_waits.labels(route.kind, route.label).inc()
                log.info("pacing %s: waiting %.1fs for room under WeCom's limits", route.channel.name, wait)
                waited = True
            await self.sleep(min(wait, 1.0))

    async def _retry_later(self, job: Job, route: Route, exc: WeComError) -> bool:
        now = self.clock()
        if now - job.created_at > self.settings.max_age:
            await self._dead(
                job,
                route,
                exc.reason.value,
                f"gave up after {self.settings.max_age:.0f}s of transient failures: {exc.detail}",
            )
            return True
        attempts = job.attempts + 1
        delay = min(self.settings.retry_max, self.settings.retry_initial * 2 ** (attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: targets and replicas do not retry in step
        await self.outbox.retry_later(
            job.id,
            attempts,
            now + delay,
            exc.detail,
            exc.reason.value,
            now,
            maybe_delivered=exc.maybe_delivered,
        )
        # The whole target cools down, including notifications that arrive meanwhile: they wait and are
        # coalesced when WeCom is back, instead of each probing a WeCom that is down.
        self._cooldown[job.target_key] = now + delay
        log.warning(
            "delivery failed, retrying in %.1fs receiver=%s target=%s job=%d attempt=%d reason=%s: %s",
            delay,
            job.receiver,
            route.channel.name,
            job.id,
            attempts,
            exc.reason.value,
            exc.detail,
        )
        return False

    async def _dead(self, job: Job, route: Route, reason: str, detail: str) -> None:
        self.metrics.dead_letters.labels(job.receiver, reason).inc()
        await self.outbox.dead(job.id, detail, reason, self.clock())
        log.error(
            "delivery failed permanently receiver=%s target=%s job=%d reason=%s: %s "
            "(kept as a dead letter: alertmanager-wecom outbox list --state dead)",
            job.receiver,
            route.channel.name,
            job.id,
            reason,
            detail,
        )

    # -- routes ---------------------------------------------------------------------------------------

    def _route(self, spec: str) -> Route:
        route = self._routes.get(spec)
        if route is None:
            target = parse_target(spec)
            channel = build_channel(target, self.config, self.api, self.tokens)
            if target.app is not None:
                token = self.tokens.get(target.app)
                if token is not None and token.on_refresh is None:
                    token.on_refresh = self.metrics.token_refreshes.labels(target.app).inc
            kind = kind_of(target).kind
            label = kind_of(target).label(target)
            route = Route(
                target,
                self._renderer(target),
                channel,
                self._rate_keys(target),
                kind,
                label,
            )
            self._routes[spec] = route
        return route

    def _renderer(self, target: Target) -> Renderer:
        """The target's renderer; with the built-in templates if its own cannot be read any more (the
        file was moved after the config was loaded): the alerts go out, the operator is told."""
        try:
            return Renderer.for_target(target, self.config)
        except TemplateError as exc:
            log.error("%s; sending with the built-in template until the template can be read", exc)
            builtin = target.model_copy(update={"template": None, "title_template": None})
            return Renderer.for_target(builtin, self.config)

    def _rate_keys(self, target: Target) -> list[str]:
        keys = []
        for key, windows in kind_of(target).rate_windows(target, self.config, self.settings):
            self.limiter.configure(key, windows)
            keys.append(key)
        return keys


def _describe(exc: BaseException) -> str:
    """An exception as one line for a dead letter: its type and message, bounded."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:300]}"
