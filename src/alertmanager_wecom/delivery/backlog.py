"""A target's backlog: sent one notification at a time while WeCom's limits let them all through soon;
otherwise coalesced into digests (persisted first, so that a crash mid-digest resumes the same digest).
"""

from __future__ import annotations

import logging

from alertmanager_wecom.delivery import digest
from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.deliver import JobDelivery
from alertmanager_wecom.delivery.render import count_messages, parse_all
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.reasons import Reason

log = logging.getLogger(__name__)

# The backlog is read a page at a time: reading and parsing hundreds of payloads at once held the
# interpreter long enough to show in the webhook's p99 (20 ms and more at 2,500 requests/s).
PAGE = 100


def route_receiver(jobs: list[Job]) -> str:
    return jobs[0].receiver if jobs else ""


class Backlog:
    def __init__(self, services: Services, deliver: JobDelivery) -> None:
        self.s = services
        self.deliver = deliver

    async def __call__(self, jobs: list[Job], route: TargetRoute) -> bool:
        """Deliver the first page of a target's backlog, one by one or as a digest. False: stop working
        on this target for now."""
        limiter = self.s.limiter
        available = limiter.available(route.rate_keys)
        # Keep a third of a minute's room for digests, so that a storm's first digest goes out at once
        # instead of after the window has been spent on single notifications.
        reserve = limiter.capacity(route.rate_keys) // 3
        # Rendering is needed to count messages only when the jobs alone do not already exceed the room.
        fits = False
        if len(jobs) <= available - reserve:
            count, failed = await self.s.cpu.run(count_messages, route, jobs)
            if failed:
                # A job that cannot be rendered is a dead letter; the jobs behind it go on.
                for job, detail in failed:
                    await self.deliver.failures.dead(job, route, Reason.BAD_MESSAGE, detail)
                return True
            fits = count <= available - reserve
        if fits:
            for job in jobs:
                if not await self.deliver(job, route):
                    return False
            return True
        if available <= 0:
            # No room now: wait, then merge whatever has queued up by then.
            return await self.deliver.wait_for_room(route)
        # In a storm, digests are spaced by a fair share of the minute, so that each carries what
        # arrived meanwhile instead of spending the room on many small ones.
        linger = 60.0 / max(1, limiter.capacity(route.rate_keys)) - (self.s.clock() - route.last_send)
        if linger > 0:
            if self.s.stopping():
                return False
            await self.s.sleep(linger)
            return True  # read the backlog again: more may have queued up
        chosen, merged, payload, alerts = await self.build_digest(jobs)
        digest_job = await self.s.outbox.merge(chosen, payload, merged.digest_of, self.s.clock())
        self.s.metrics.digests.labels(route_receiver(jobs)).inc()
        log.info(
            "coalesced %d notifications (%d alerts) for %s into digest job %d",
            len(chosen),
            alerts,
            route.channel.name,
            digest_job.id,
        )
        # The merged notification is at hand: parsing its stored form again (megabytes in a storm) is
        # left to a restart that resumes the digest.
        return await self.deliver(digest_job, route, merged, links=[job.traceparent for job in chosen])

    async def build_digest(self, first_page: list[Job]) -> tuple[list[Job], Notification, str, int]:
        """The oldest notifications of the backlog, up to `digest_max_alerts` alerts, merged: read and
        parsed a page at a time, so that webhooks are answered in between. Returns (the jobs merged, the
        digest, its stored form, its alerts)."""
        chosen: list[Job] = []
        notifications: list[Notification] = []
        alerts = 0
        page = first_page
        while page:
            parsed = await self.s.cpu.run(parse_all, page)
            for job, notification in zip(page, parsed, strict=True):
                if isinstance(notification, str):  # a stored payload that cannot be read: not merged
                    await self.deliver.failures.unreadable(job, notification)
                    continue
                if chosen and alerts + len(notification.alerts) > self.s.settings.digest_max_alerts:
                    page = []
                    break
                chosen.append(job)
                notifications.append(notification)
                alerts += len(notification.alerts)
            else:
                if len(page) < PAGE:
                    break
                page = await self.s.outbox.pending_jobs(page[0].target_key, self.s.clock(), PAGE, page[-1].id)
        merged, payload = await self.s.cpu.run(digest.build, notifications)
        return chosen, merged, payload, alerts
