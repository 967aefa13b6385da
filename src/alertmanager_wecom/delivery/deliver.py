"""One job's delivery, as small stages composed in `JobDelivery.__call__`:

    render → for each message not yet sent: wait for room → write ahead → send → record
                                                                            ↘ failed (retry.py)
    → done

With tracing on, the job is one span and each stage a child span (the WeCom calls are the send's).

Each stage is a method that can be called, and tested, alone. A job is delivered message by message and
its progress recorded after each one, so that a crash repeats at most the message that was in flight,
byte-identical (see `write_ahead`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from alertmanager_wecom.channels import SendResult
from alertmanager_wecom.config import AppTarget
from alertmanager_wecom.delivery.claims import take_slot
from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.render import describe, parse, render_job
from alertmanager_wecom.delivery.retry import Failures
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.reasons import DeliveryError, Reason
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.tracing import NO_SPAN, Span

log = logging.getLogger(__name__)


class JobDelivery:
    def __init__(self, services: Services, failures: Failures | None = None) -> None:
        self.s = services
        self.failures = failures or Failures(services)

    async def __call__(
        self,
        job: Job,
        route: TargetRoute,
        notification: Notification | None = None,
        links: Sequence[str | None] = (),
    ) -> bool:
        """Send the job's remaining messages (`notification`: the job's payload, already parsed).
        False: stop working on this target for now (shutting down, or backing off). `links`: the
        traceparents of the jobs a digest merged: it continues the first one's trace (`merge` stored it
        as its own) and links the others'."""
        tracing = self.s.tracing
        if not tracing.enabled:
            return await self._deliver(job, route, notification, NO_SPAN)
        # A child of the webhook's span, stored with the job: one trace from Alertmanager to WeCom,
        # whatever the job waited for in between (a backlog, a retry, a restart).
        with tracing.span(
            "deliver",
            parent=job.traceparent,
            links=[link for link in links if link != job.traceparent],
            attributes={
                "alertmanager_wecom.receiver": job.receiver,
                "alertmanager_wecom.target": route.channel.name,
                "alertmanager_wecom.job_id": job.id,
                "alertmanager_wecom.attempt": job.attempts + 1,
                "alertmanager_wecom.digest_of": job.digest_of,
            },
        ) as span:
            return await self._deliver(job, route, notification, span)

    async def _deliver(
        self, job: Job, route: TargetRoute, notification: Notification | None, span: Span
    ) -> bool:
        cards = self.s.cards if route.cards is not None else None
        if notification is None and (cards is not None or (route.target.chart and self.s.charts is not None)):
            try:
                notification = await self.s.cpu.run(parse, job)
            except Exception as exc:
                await self.failures.dead(job, route, Reason.BAD_MESSAGE, f"cannot read: {describe(exc)}")
                span.fail(Reason.BAD_MESSAGE)
                return True
        if cards is not None and notification is not None:
            quiet = await cards.quiet_reason(job.receiver, route.target, notification)
            if quiet is not None:
                log.info("receiver=%s job=%d not sent: %s", job.receiver, job.id, quiet)
                await self.s.outbox.done(job.id, self.s.clock())
                span.set("alertmanager_wecom.outcome", "held back")
                return True
        stage = self.s.tracing.span
        with stage("render"):
            messages = await self.render(job, route, notification)
        if messages is None:
            span.fail(Reason.BAD_MESSAGE)
            return True  # a dead letter: the next job goes on
        span.set("alertmanager_wecom.messages", len(messages))
        for index in range(job.sent_parts, len(messages)):
            # Shutting down: stop between messages; the job resumes at this part after the restart.
            if self.s.stopping():
                span.set("alertmanager_wecom.outcome", "stopped")
                return False
            with stage("wait for room"):
                room = await self.wait_for_room(route)
            if not room:
                span.set("alertmanager_wecom.outcome", "stopped")
                return False
            with stage("write ahead"):
                at = await self.write_ahead(job, route)
            if at is None:  # shutting down while waiting for room among replicas (claims.py)
                span.set("alertmanager_wecom.outcome", "stopped")
                return False
            try:
                # The WeCom calls (wecom/api.py, with their errcodes) are this span's children.
                with stage("send", attributes={"alertmanager_wecom.message": index}):
                    result = await self.send(route, messages[index])
            except DeliveryError as exc:
                span.set("alertmanager_wecom.outcome", "failed")
                span.set("alertmanager_wecom.reason", exc.reason)
                span.fail(f"not accepted: {exc.reason}")
                return await self.failures.send_failed(job, route, exc, at)
            with stage("record"):
                await self.record_sent(job, route, index, at, result)
                if messages[index].card is not None and notification is not None:
                    await self.record_card(job, route, messages[index], result, notification.group_key)
        with stage("record"):
            await self.record_done(job, route, len(messages), notification)
        span.set("alertmanager_wecom.outcome", "delivered")
        if cards is not None and notification is not None and notification.status == "resolved":
            cards.later(
                cards.group_resolved(job.receiver, job.target_spec, notification.group_key), "resolve"
            )
        if self.s.charts is not None and notification is not None and messages:
            self.s.charts.after(job, route, notification)
        return True

    # -- the stages -----------------------------------------------------------------------------------

    async def render(
        self, job: Job, route: TargetRoute, notification: Notification | None = None
    ) -> list[Message] | None:
        """The job's messages, or None when nothing will render them (then it is a dead letter)."""
        state = None
        if route.cards is not None and self.s.cards is not None and notification is not None:
            state = await self.s.cards.state_for(job.receiver, notification.group_key)
        try:
            extras = self.s.extras(job, route) if self.s.extras is not None else None
            return await self.s.cpu.run(render_job, route, job, notification, state, False, extras)
        except Exception as exc:
            await self.failures.dead(job, route, Reason.BAD_MESSAGE, f"cannot render: {describe(exc)}")
            return None

    async def wait_for_room(self, route: TargetRoute) -> bool:
        """Wait until every rate key of the route has room for one more message under WeCom's limits
        (which drops what is over them without an error). False: shutting down meanwhile."""
        waited = False
        while True:
            wait = self.s.limiter.wait_time(route.rate_keys)
            if wait <= 0:
                return True
            if self.s.stopping():
                return False
            if not waited:
                self.s.metrics.rate_limit_waits.labels(route.channel_label, route.target_label).inc()
                log.info("pacing %s: waiting %.1fs for room under WeCom's limits", route.channel.name, wait)
                waited = True
            # In steps of at most a second, so that a shutdown does not wait for the whole window.
            await self.s.sleep(min(wait, 1.0))

    async def write_ahead(self, job: Job, route: TargetRoute) -> float | None:
        """Take the rate-limit slot and mark the job in flight before the message leaves: after a crash
        the job may have reached WeCom, so it is resent unchanged (WeCom's duplicate check drops the
        copy), never merged into a digest. Returns the slot's time; None: shutting down meanwhile.
        Replicas take the slot in the shared ledger, under the target's lease (claims.py)."""
        if self.s.outbox.shared:
            return await take_slot(self.s, job, route)
        at = route.last_send = self.s.limiter.record(route.rate_keys)
        await self.s.outbox.sending(job.id, self.s.clock())
        return at

    async def send(self, route: TargetRoute, message: Message) -> SendResult:
        """Raises `DeliveryError` when the message was not taken (WeCom's channels: a `WeComError`)."""
        return await route.channel.send(message)

    async def record_sent(
        self, job: Job, route: TargetRoute, index: int, at: float, result: SendResult
    ) -> None:
        """Message `index` was accepted: the job's progress and the send (for the limits after a restart)."""
        self.s.metrics.messages_sent.labels(job.receiver, route.channel_label, route.target_label).inc()
        if self.s.outbox.shared:  # the send was recorded with its slot (claims.py)
            await self.s.outbox.progress(job.id, index + 1, self.s.clock())
        else:  # together: the outbox's writer commits both in one transaction
            await asyncio.gather(
                self.s.outbox.progress(job.id, index + 1, self.s.clock()),
                self.s.outbox.record_send(route.rate_keys, at),
            )
        for field, names in result.invalid.items():  # invaliduser, invalidparty, invalidtag
            log.warning(
                "WeCom did not deliver to %s %s via %s: not found or outside the app's visible range (可见范围)",
                field.removeprefix("invalid"),
                "|".join(names),
                route.channel.name,
            )

    async def record_card(
        self, job: Job, route: TargetRoute, message: Message, result: SendResult, group_key: str
    ) -> None:
        """A card reached WeCom: remember it (and its response code) to redraw it later. A failure here
        is logged and never holds delivery back: the card was delivered."""
        if self.s.cards is None or message.card is None or not isinstance(route.target, AppTarget):
            return
        try:
            await self.s.cards.sent(
                route.target.app,
                job.receiver,
                job.target_spec,
                job.id,
                job.payload,
                group_key,
                message.card,
                result.response_code,
            )
        except Exception:
            log.exception(
                "card of job %d delivered but not remembered: its buttons will not update it", job.id
            )

    async def record_done(
        self, job: Job, route: TargetRoute, messages: int, notification: Notification | None = None
    ) -> None:
        """`notification`: the job's payload, if it was parsed on the way (a digest always is)."""
        await self.s.outbox.done(job.id, self.s.clock())
        if messages and self.s.delivered is not None:
            self.s.delivered(job, route, notification)
        if messages:
            self.s.metrics.latency.labels(route.channel_label).observe(
                max(0.0, self.s.clock() - job.created_at)
            )
        log.info(
            "delivered receiver=%s target=%s job=%d messages=%d%s",
            job.receiver,
            route.channel.name,
            job.id,
            messages,
            f" digest_of={job.digest_of}" if job.digest_of else "",
        )
