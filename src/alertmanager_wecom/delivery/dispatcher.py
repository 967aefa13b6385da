"""The dispatcher: takes jobs from the outbox and delivers them, paced, coalesced, retried.

This module is the loop: rounds over the targets with due jobs, one task per busy target, waking on new
notifications, idling otherwise, and the outbox's maintenance. What happens to a target's jobs is in
`backlog` (one by one, or coalesced into a digest), `deliver` (one job's stages: render → wait for room
→ write ahead → send → record) and `retry` (backoff, dead letters).

Per target (one receiver target: a channel and its recipients), jobs are delivered in order, one
message at a time, each message waiting for room under WeCom's frequency limits.  Transient failures
back off the whole target exponentially with jitter, up to `max_age`; permanent ones go to the dead
letters with the reason and its fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import httpx

from alertmanager_wecom.channels.base import token_for
from alertmanager_wecom.config import Config, DeliverySettings
from alertmanager_wecom.delivery.backlog import PAGE, Backlog
from alertmanager_wecom.delivery.charts import Charts
from alertmanager_wecom.delivery.context import CardHooks, Services
from alertmanager_wecom.delivery.deliver import JobDelivery
from alertmanager_wecom.delivery.lookup import Lookups
from alertmanager_wecom.delivery.oncall import OnCall
from alertmanager_wecom.delivery.render import render_messages
from alertmanager_wecom.delivery.routes import Routes
from alertmanager_wecom.ingest.routing import configured_target_keys
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.oncall.store import OncallStore
from alertmanager_wecom.outbox import JobState, LeaseLost, Outbox, OutboxUnavailable
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken
from alertmanager_wecom.wecom.userid import UserIds

log = logging.getLogger(__name__)

__all__ = ["Dispatcher", "render_messages"]

MAINTENANCE_SECONDS = 600.0
GAUGE_SECONDS = 2.0
BURST_SECONDS = 0.01  # woken by new notifications: let a burst of them land first


class Dispatcher:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
        jitter: Callable[[], float] | None = None,
        cards: CardHooks | None = None,
        oncall: OncallStore | None = None,
    ) -> None:
        """`clock` and `sleep` are all the time the dispatcher sees (tests pass fakes); `jitter`: the
        fraction of each backoff delay waited (random in [0.5, 1] by default)."""
        self.config = config
        self.outbox = outbox
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.services = Services(outbox, config.delivery, metrics or Metrics(), clock, sleep)
        if jitter is not None:
            self.services.jitter = jitter
        self.services.stopping = lambda: self._stopping
        self.services.cards = cards  # acting on alert cards plugs in here (actions/cards.py)
        self.metrics = self.services.metrics
        self.limiter = self.services.limiter
        self.routes = self._routes_for(config)
        self.services.charts = Charts(self.services, lambda: self.config, clock)
        self.deliver = JobDelivery(self.services)
        # Kept across reloads: the cache and the day's look-ups that found nobody outlive a config.
        userids = UserIds(config.wecom, self.metrics, clock, ledger=outbox.record_send)
        self.lookups = Lookups(userids, self.deliver.failures)
        self.backlog = Backlog(self.services, self.deliver)
        # On-call: who is on call, escalation steps, the incidents' timelines (delivery/oncall.py).
        self.oncall_store = oncall
        self.oncall = OnCall(
            self.services, self.deliver.failures, lambda: self.config, lambda: self.oncall_store
        )
        self.services.delivered = self.oncall.delivered
        self.services.extras = self.oncall.extras
        self._configured = configured_target_keys(config)
        # Targets that may have pending jobs: the configured ones, and any left from an earlier config.
        self._targets: set[str] = set(self._configured)
        self._wake = asyncio.Event()
        # Rounds look at every target only once a poll interval (or when one is due): with a thousand
        # targets that is 2000 look-ups, too many for every webhook and every finished task. In between
        # they look at the targets named since (`_fresh`: woken, or their task finished) and start those
        # found due (`_ready`, in the order found) as workers come free.
        self._fresh: set[str] = set()
        self._ready: dict[str, None] = {}
        self._scan_at = 0.0  # the next look at every target
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False
        # This process, among replicas sharing the outbox: leases on targets are held under this name.
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.services.owner = self.owner  # the write-ahead checks the lease under it (claims.py)
        self._held: set[str] = set()
        self._last_maintenance = 0.0
        self._last_gauges = 0.0

    @property
    def settings(self) -> DeliverySettings:
        return self.services.settings

    def _routes_for(self, config: Config) -> Routes:
        return Routes(config, WeComAPI(config.wecom.api_url, self.client), self.metrics, self.limiter)

    def app_token(self, app: str) -> AccessToken:
        """The app's token cache, shared with delivery (card updates use it too)."""
        return token_for(app, self.config, self.routes.api, self.routes.tokens)

    def reload(self, config: Config) -> None:
        """Use a new config from now on. Jobs already queued keep their target; tasks in flight finish
        with the route they have; tokens are fetched again (the secret may have changed)."""
        self.config = config
        self.services.settings = config.delivery
        self.routes = self._routes_for(config)
        self.lookups.userids.configure(config.wecom)
        self._configured = configured_target_keys(config)
        self._targets |= self._configured
        self._scan_at = 0.0
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        # Sends of the last day count against the limits after a restart too.
        for key, at in self.lookups.userids.replay(await self.outbox.recent_sends(self.clock() - 86400)):
            self.limiter.record([key], at)
        self._targets |= set(await self.outbox.pending_targets())
        self._main = asyncio.create_task(self._run(), name="dispatcher")
        # Notifications other replicas accept wake this one (a shared outbox; a no-op otherwise).
        self._listener = asyncio.create_task(self.outbox.listen(self.wake), name="outbox-listener")

    def wake(self, target_keys: Iterable[str] = ()) -> None:
        """New jobs were committed (for these targets: routing can make targets that no config names)."""
        keys = set(target_keys)
        self._targets |= keys
        self._fresh |= keys
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    @property
    def busy(self) -> int:
        """Targets being delivered to now (each by a task of its own)."""
        return len(self._busy)

    async def stop(self, grace: float = 30.0) -> None:
        """Finish the messages in flight, then return; what is still queued stays in the outbox."""
        self._stopping = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        self._wake.set()
        pending = [t for t in (self._main, *self._tasks) if t is not None]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        if self.services.charts is not None:
            await self.services.charts.drain()  # a chart being sent finishes; none is started any more
        await self.oncall.drain()  # timeline writes finish

    # -- the loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                wait = await self._round()
            except OutboxUnavailable as exc:
                if not exc.logged:
                    log.warning("outbox unavailable (%s); trying again", exc)
                wait = max(1.0, self.settings.poll_interval)
            except Exception:
                log.exception("dispatcher round failed; retrying")
                wait = self.settings.poll_interval
            await self._idle(wait)

    async def _round(self) -> float:
        """Start a task for each target with due jobs, up to `workers` at once; return how long to wait
        before the next round. A target's jobs are sent by one task at a time, in order; the tasks of
        different targets run side by side (a fan-out to many people is sent `workers` at a time)."""
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
        scan = now >= self._scan_at
        if scan:
            self._scan_at = now + self.settings.poll_interval
            if self.outbox.shared:
                # Other replicas accept notifications too: their targets are found here.
                self._targets |= set(await self.outbox.pending_targets())
            self._fresh |= self._targets
        idle = [k for k in self._fresh if k not in self._busy and k not in self._ready]
        found = await self.outbox.next_due(idle) if idle else {}
        self._fresh.difference_update(idle)  # after the look-up: kept if it failed
        cooldown = self.services.cooldown
        for key, due in found.items():
            if due is None:
                if key not in self._configured:
                    self._targets.discard(key)
                continue
            due = max(due, cooldown.get(key, 0.0))
            if due > now:
                self._scan_at = min(self._scan_at, due)
                continue
            self._ready[key] = None
        while self._ready and len(self._busy) < self.settings.workers:  # else a finishing task wakes the loop
            key = next(iter(self._ready))
            del self._ready[key]
            cooldown.pop(key, None)
            self._busy.add(key)
            task = asyncio.create_task(self._process_target(key), name=f"target-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._scan_at - now

    async def _idle(self, seconds: float) -> None:
        """Wait `seconds`, or less when woken."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = asyncio.ensure_future(self._wake.wait())
        timer = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            timer.cancel()
        if self._wake.is_set():
            # Woken by new notifications: let a burst of them land first, so one round serves them all.
            await self.sleep(BURST_SECONDS)
        self._wake.clear()

    async def _maintain(self, now: float) -> None:
        retention = self.config.storage.retention
        await self.outbox.purge([JobState.DONE, JobState.MERGED, JobState.DEAD], now - retention)
        await self.outbox.forget(now - self.settings.dedup_window, now - 86400)
        if self.services.cards is not None:
            try:
                await self.services.cards.maintain(now)
            except Exception:  # the card store's trouble never stops delivery
                log.exception("card store maintenance failed")
        if self.oncall_store is not None:
            try:  # incidents are kept as long as the audit log of card actions
                gone = await self.oncall_store.purge(now, self.config.storage.audit_retention)
                if gone:
                    log.info("on-call store: %d incidents past their retention forgotten", gone)
            except Exception:
                log.exception("on-call store maintenance failed")

    # -- one target -----------------------------------------------------------------------------------

    async def _hold(self, key: str) -> bool:
        """The target's lease (replicas sharing an outbox send to a target one at a time). Newly taken
        from another replica: its sends under WeCom's limits are read from the shared ledger first."""
        if not await self.outbox.lease(key, self.owner, self.config.storage.lease):
            return False
        if key not in self._held:
            self._held.add(key)
            if self.outbox.shared:
                await self._reload_limits(key)
        return True

    async def _reload_limits(self, key: str) -> None:
        """What the shared ledger knows of the sends under the rate keys of the target's jobs."""
        jobs = await self.outbox.pending_jobs(key, self.clock(), 1)
        if not jobs:
            return
        try:
            keys = self.routes.get(jobs[0].target_spec).rate_keys
        except Exception:
            return  # an unroutable target is dealt with by the loop
        sends: dict[str, list[float]] = {k: [] for k in keys}
        for rate_key, at in await self.outbox.recent_sends(self.clock() - 3600):
            if rate_key in sends:
                sends[rate_key].append(at)
        for rate_key, times in sends.items():
            self.limiter.load(rate_key, times)

    async def _keep(self, key: str) -> None:
        """Extend the lease while the target is worked on; losing it stops the work at the next job.

        Short leases renewed often (three times a lease, by default every second) rather than long ones
        plus a liveness key per replica: a dead replica's targets are free once its last lease runs out,
        with one mechanism, one key per target, and no second clock to agree with. It costs one small
        Redis script per busy target a second, at most `delivery.workers` per replica. A replica stalled
        past its lease (SIGSTOP, a long GC) may find its targets taken: the write-ahead checks the lease
        in its own atomic step (claims.py), so it then sends nothing."""
        while True:
            await self.sleep(self.config.storage.lease / 3)
            try:
                kept = await self.outbox.lease(key, self.owner, self.config.storage.lease)
            except OutboxUnavailable as exc:  # whether it still holds is unknown: stop, as if lost
                self._held.discard(key)
                if not exc.logged:
                    log.warning("cannot extend the lease on target %s: %s", key, exc)
                return
            if not kept:
                self._held.discard(key)
                log.warning("lost the lease on target %s to another replica", key)
                return

    async def _process_target(self, key: str) -> None:
        keeper: asyncio.Task[None] | None = None
        try:
            if not await self._hold(key):
                # Another replica is sending to this target: look again in a round, not at once (a
                # finishing task wakes the loop), until its lease is given up or runs out.
                self.services.cooldown[key] = self.clock() + self.settings.poll_interval
                return
            if self.outbox.shared:
                keeper = asyncio.create_task(self._keep(key))
            while not self._stopping and (keeper is None or not keeper.done()):
                jobs = await self.outbox.pending_jobs(key, self.clock(), PAGE)
                if not jobs:
                    return
                try:
                    route = self.routes.get(jobs[0].target_spec)
                except Exception as exc:  # nothing retrying can fix: a target or template that is gone
                    await self.deliver.failures.unroutable(jobs, exc)
                    continue
                if self.oncall.concerns(route.target):  # who is on call now; steps still needed
                    prepared = await self.oncall.prepare(jobs, route, self.routes)
                    if isinstance(prepared, bool):
                        continue
                    jobs, route = prepared
                if route.target.lookups:  # email:/mobile: recipients: their userids, at send time
                    found = await self.lookups.route(jobs, route, self.routes)
                    if isinstance(found, bool):
                        if not found:
                            return
                        continue
                    route = found
                started = next((j for j in jobs if j.sent_parts > 0 or j.inflight), None)
                if started is not None:
                    # A partly sent job is finished first, alone, exactly as it was split.
                    if not await self.deliver(started, route):
                        return
                    continue
                if not await self.backlog(jobs, route):
                    return
        except LeaseLost:  # stalled past the lease: another replica may hold the target now
            log.warning(
                "lost the lease on target %s while sending: not sending, leaving it to its holder", key
            )
            self._held.discard(key)
        except OutboxUnavailable as exc:  # an outage, not a bug: no traceback, and logged once a minute
            if not exc.logged:
                log.warning("delivery to target %s paused, the outbox is unavailable: %s", key, exc)
            self.services.cooldown[key] = self.clock() + max(5.0, self.settings.poll_interval)
        except Exception:
            log.exception("delivery to target %s failed unexpectedly; will retry", key)
            self.services.cooldown[key] = self.clock() + max(5.0, self.settings.poll_interval)
        finally:
            if keeper is not None:
                keeper.cancel()
                if key in self._held:
                    self._held.discard(key)
                    with contextlib.suppress(Exception):
                        await self.outbox.release(key, self.owner)
            self._busy.discard(key)
            self._fresh.add(key)  # more may be due, or its next time is to be known
            self._wake.set()
