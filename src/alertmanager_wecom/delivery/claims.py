"""The write-ahead on a shared outbox (replicas): the rate slot taken in the shared ledger.

One process paces with its own `RateLimiter`: it makes every send, so its record is the truth. Replicas
do not: the same person can be in targets held by different replicas, and one app's daily quota spans
them all. So there the write-ahead asks the outbox for the slot (`Outbox.sending` with a `SendClaim`):
in one atomic step it checks that this replica still holds the target's lease, counts every replica's
sends under each rate key, and records this one only when there is room. The local limiter stays the
cheap first check (`JobDelivery.wait_for_room`) and the backlog's view for coalescing; each refusal
brings it up to date with what the others sent.
"""

from __future__ import annotations

import logging

from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.outbox import Job, SendClaim, WriteAhead

log = logging.getLogger(__name__)


def claim_for(s: Services, job: Job, route: TargetRoute) -> SendClaim:
    limits = tuple(
        (key, tuple((w.limit, w.seconds) for w in s.limiter.windows(key))) for key in route.rate_keys
    )
    return SendClaim(job.target_key, s.owner, limits)


def learn(s: Services, ahead: WriteAhead) -> None:
    """A refused claim brings this replica's limiter up to date with every replica's sends."""
    for key, times in ahead.sends.items():
        s.limiter.load(key, times)


async def take_slot(s: Services, job: Job, route: TargetRoute) -> float | None:
    """Wait for room counting every replica's sends, then write ahead (see `JobDelivery.write_ahead`).
    Returns the slot's time; None: shutting down meanwhile. Raises `LeaseLost` when another replica
    holds the target now: nothing is written, nothing may be sent."""
    claim = claim_for(s, job, route)
    waited = False
    while True:
        now = s.clock()
        ahead = await s.outbox.sending(job.id, now, claim)
        if ahead.wait <= 0:
            route.last_send = s.limiter.record(route.rate_keys, now)
            return now
        learn(s, ahead)
        if s.stopping():
            return None
        if not waited:
            s.metrics.rate_limit_waits.labels(route.channel_label, route.target_label).inc()
            log.info(
                "pacing %s: waiting %.1fs for room under WeCom's limits (sends by other replicas)",
                route.channel.name,
                ahead.wait,
            )
            waited = True
        # In steps of at most a second, so that a shutdown does not wait for the whole window.
        await s.sleep(min(ahead.wait, 1.0))
