"""Failures: a transient one backs the whole target off exponentially (with jitter, up to `max_age`);
a permanent one makes the job a dead letter, with the reason and its fix."""

from __future__ import annotations

import logging

from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.reasons import DeliveryError, Reason

log = logging.getLogger(__name__)


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """The longest wait before attempt `attempts + 1`: doubling from `initial`, at most `maximum`."""
    return min(maximum, initial * 2.0 ** (attempts - 1))


class Failures:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def send_failed(self, job: Job, route: TargetRoute, exc: DeliveryError, at: float) -> bool:
        """Record a send WeCom did not accept. False: stop working on this target for now."""
        self.s.limiter.forget(route.rate_keys, at)  # it does not count against WeCom's limits
        self.s.metrics.messages_failed.labels(
            job.receiver, route.channel_label, route.target_label, exc.reason
        ).inc()
        self.s.metrics.wecom_errors.labels(exc.code or "none").inc()
        if exc.retryable:
            return await self.retry_later(job, route, exc)
        await self.dead(job, route, exc.reason, exc.detail, refused=not exc.maybe_delivered)
        return True

    async def retry_later(self, job: Job, route: TargetRoute, exc: DeliveryError) -> bool:
        settings = self.s.settings
        now = self.s.clock()
        if now - job.created_at > settings.max_age:
            await self.dead(
                job,
                route,
                exc.reason,
                f"gave up after {settings.max_age:.0f}s of transient failures: {exc.detail}",
                refused=not exc.maybe_delivered,
            )
            return True
        attempts = job.attempts + 1
        delay = backoff(attempts, settings.retry_initial, settings.retry_max) * self.s.jitter()
        await self.s.outbox.retry_later(
            job.id,
            attempts,
            now + delay,
            exc.detail,
            exc.reason,
            now,
            maybe_delivered=exc.maybe_delivered,
        )
        # The whole target cools down, including notifications that arrive meanwhile: they wait and are
        # coalesced when WeCom is back, instead of each probing a WeCom that is down.
        self.s.cooldown[job.target_key] = now + delay
        log.warning(
            "delivery failed, retrying in %.1fs receiver=%s target=%s job=%d attempt=%d reason=%s: %s",
            delay,
            job.receiver,
            route.channel.name,
            job.id,
            attempts,
            exc.reason,
            exc.detail,
        )
        return False

    async def dead(
        self, job: Job, route: TargetRoute, reason: Reason, detail: str, refused: bool = False
    ) -> None:
        """`refused`: WeCom answered that it did not take the message: its send is given back in the
        shared ledger (the local limiter forgot it already, `send_failed`)."""
        self.s.metrics.dead_letters.labels(job.receiver, reason).inc()
        await self.s.outbox.dead(job.id, detail, reason, self.s.clock(), refused=refused)
        log.error(
            "delivery failed permanently receiver=%s target=%s job=%d reason=%s: %s "
            "(kept as a dead letter: alertmanager-wecom outbox list --state dead)",
            job.receiver,
            route.channel.name,
            job.id,
            reason,
            detail,
        )

    async def unroutable(self, jobs: list[Job], exc: Exception) -> None:
        """Jobs queued under a config that named an app or robot the current one does not (or whose
        target is broken): nothing retrying can fix."""
        for job in jobs:
            await self.s.outbox.dead(job.id, f"cannot deliver: {exc}", Reason.CONFIG, self.s.clock())
            self.s.metrics.dead_letters.labels(job.receiver, Reason.CONFIG).inc()
        log.error(
            "jobs whose target cannot be used (gone from the config, or broken) were moved to the dead letters: %s",
            exc,
        )

    async def unreadable(self, job: Job, detail: str) -> None:
        """A stored payload that cannot be read (found while building a digest): not merged."""
        await self.s.outbox.dead(job.id, detail, Reason.BAD_MESSAGE, self.s.clock())
        self.s.metrics.dead_letters.labels(job.receiver, Reason.BAD_MESSAGE).inc()
        log.error("job %d moved to the dead letters: %s", job.id, detail)
