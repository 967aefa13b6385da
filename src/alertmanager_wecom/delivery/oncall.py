"""On-call at send time: ``oncall:<schedule>`` recipients become the person on call now, and an escalation
step, when due, is taken only if its incident still needs it.

The person on call is decided when the message is sent, not when the alert came: a step due at 03:10
goes to whoever holds the shift then, overrides included (oncall/schedule.py, the store's overrides).

A step (a job whose target carries an `EscalationMark`, stored with the incident's first notification:
ingest/escalation.py) is checked when it falls due, never by a timer that could forget: its incident
acknowledged (card, link, console, API), silenced from a card, or resolved — the job is done unsent.
Otherwise it is taken once (`OncallStore.take_step`, keyed by the job: a copy stored twice, or another
replica, does not take it again; the same job after a restart does) and sent like every message, with
its timeline event and metric. A job already started (in flight, or partly sent) was taken before a
restart: it is finished, not checked again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.config import AppTarget, ChatTarget, Config, RobotTarget, Target, target_spec
from alertmanager_wecom.config.oncall import schedule_of
from alertmanager_wecom.config.targets import EscalationMark
from alertmanager_wecom.delivery.context import Services
from alertmanager_wecom.delivery.render import parse
from alertmanager_wecom.delivery.retry import Failures
from alertmanager_wecom.delivery.routes import Routes, TargetRoute
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.oncall.ack_link import digest_link_group, sign
from alertmanager_wecom.oncall.schedule import on_call
from alertmanager_wecom.oncall.store import Incident, IncidentEvent, OncallStore, group_id
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.reasons import Reason
from alertmanager_wecom.rendering.message import Extras
from alertmanager_wecom.rendering.strings import STRINGS, format_duration

log = logging.getLogger(__name__)

# A step found stale was stored for an incident that has ended since (a later one opened after it).
_SLACK = 0.001


def names_oncall(target: Target) -> bool:
    return any(schedule_of(v) for v in (*getattr(target, "to_user", ()), *getattr(target, "mention", ())))


def slot(mark: EscalationMark) -> int:
    """The number a step's target is taken under (`take_step`'s step): each target of a step is taken
    once, on its own (a step to a person and a robot sends to both)."""
    return mark.step * 100 + mark.target


def escalates(policy: str | None, target: Target) -> bool:
    """Whether the groups a target notifies escalate: its receiver's policy, its own, or it is a step."""
    return policy is not None or target.escalation is not None or target.escalation_step is not None


def level(step: int) -> int:
    """What people call a step: the first notification is level 1, the policy's first step level 2."""
    return step + 2


class OnCall:
    def __init__(
        self,
        services: Services,
        failures: Failures,
        config: Callable[[], Config],
        store: Callable[[], OncallStore | None],
    ) -> None:
        self.s = services
        self.failures = failures
        self._config = config
        self._store = store
        self._background: set[asyncio.Task[Any]] = set()
        # Steps whose "escalated" event is written: a step retried after a failed send is taken again
        # (the same job), not written again. Bounded: the oldest go first.
        self._written: dict[int, None] = {}

    def concerns(self, target: Target) -> bool:
        return target.escalation_step is not None or names_oncall(target)

    async def prepare(
        self, jobs: list[Job], route: TargetRoute, routes: Routes
    ) -> tuple[list[Job], TargetRoute] | bool:
        """The jobs to send now and the route to send them through; or, when every job was dealt with
        here, True (go on with the target's next jobs)."""
        if names_oncall(route.target):
            resolved = await self._resolve(jobs, route, routes)
            if isinstance(resolved, bool):
                return resolved
            route = resolved
        if route.target.escalation_step is None:
            return jobs, route
        admitted = [job for job in jobs if await self._admit(job, route)]
        return (admitted, route) if admitted else True

    # -- who is on call -------------------------------------------------------------------------------

    async def who(self, schedule: str, at: float) -> str | None:
        """The person on call for `schedule` at `at` (overrides included); None when nobody is."""
        config = self._config().oncall.schedules.get(schedule)
        if config is None:
            return None
        store = self._store()
        try:
            overrides = await store.overrides(schedule, at, at + 1) if store is not None else []
        except Exception as exc:  # an alert waits for no store: the rotation's person, without overrides
            log.warning("schedule %s: overrides unreadable (%s); the rotation decides", schedule, exc)
            overrides = []
        shift = on_call(config, at, overrides)
        return None if shift is None else shift.user

    async def _resolve(self, jobs: list[Job], route: TargetRoute, routes: Routes) -> TargetRoute | bool:
        target = route.target
        now = self.s.clock()
        nobody: list[str] = []
        fields: dict[str, list[str]] = {}
        for name in ("to_user", "mention"):
            values: list[str] = []
            for value in getattr(target, name, ()):
                schedule = schedule_of(value)
                if schedule is None:
                    values.append(value)
                    continue
                user = await self.who(schedule, now)
                if user is None:
                    nobody.append(schedule)
                else:
                    values.append(user)
            if getattr(target, name, ()):
                fields[name] = list(dict.fromkeys(values))
        if nobody:
            log.warning(
                "receiver %s: nobody is on call for %s now", jobs[0].receiver, ", ".join(sorted(set(nobody)))
            )
        resolved = target.model_copy(update=fields)
        if isinstance(resolved, AppTarget) and not (resolved.to_user or resolved.to_party or resolved.to_tag):
            if resolved.fallback is None:
                detail = f"nobody on call for schedule {', '.join(sorted(set(nobody)))} and no fallback"
                for job in jobs:
                    await self.failures.dead(job, route, Reason.RECIPIENTS, detail)
                return True
            fallback = resolved.fallback
            resolved = resolved.model_copy(
                update={"to_user": fallback.to_user, "to_party": fallback.to_party, "to_tag": fallback.to_tag}
            )
        return routes.get(target_spec(resolved))

    # -- escalation steps -----------------------------------------------------------------------------

    async def _admit(self, job: Job, route: TargetRoute) -> bool:
        """Whether the step job is sent now; if not, it is done here (unsent), with the reason logged."""
        mark = route.target.escalation_step
        assert mark is not None
        if job.sent_parts > 0 or job.inflight:
            return True  # taken before a restart: finished as it was started
        store = self._store()
        why: str
        incident: Incident | None = None
        if store is None:
            why = "stale"
        else:
            try:
                notification = await self.s.cpu.run(parse, job)
            except Exception as exc:
                await self.failures.dead(job, route, Reason.BAD_MESSAGE, f"cannot read: {exc}")
                return False
            incident = await store.current(job.receiver, group_id(notification.group_key))
            why = self._why_not(incident, job)
            taken = not why and incident is not None
            if taken and incident is not None:
                taken = await store.take_step(incident.id, mark.round, slot(mark), str(job.id))
                why = "" if taken else "taken"
        if why:
            self.s.metrics.escalations_stopped.labels(mark.policy, why).inc()
            log.info(
                "receiver=%s job=%d escalation %s level %d not taken: %s",
                job.receiver,
                job.id,
                mark.policy,
                level(mark.step),
                (incident.stop_reason() if incident is not None else None) or why,
            )
            await self.s.outbox.done(job.id, self.s.clock())
            return False
        assert incident is not None and store is not None
        if job.id in self._written:
            return True
        self._written[job.id] = None
        if len(self._written) > 10_000:
            del self._written[next(iter(self._written))]
        self.s.metrics.escalations.labels(mark.policy, str(level(mark.step))).inc()
        event = IncidentEvent(
            at=self.s.clock(),
            kind="escalated",
            who=recipients_of(route.target),
            how=f"level {level(mark.step)}" + (f", round {mark.round + 1}" if mark.round else ""),
            detail=f"unacknowledged for {format_duration(mark.after, STRINGS['en'])}",
        )
        self.later(store.add_event(incident.id, event))
        return True

    @staticmethod
    def _why_not(incident: Incident | None, job: Job) -> str:
        if incident is None or incident.started_at > job.created_at + _SLACK:
            return "stale"  # no incident, or a later one: this step was for one that has ended
        if incident.acknowledged_at is not None:
            return "acknowledged"
        if incident.silenced_at is not None:
            return "silenced"
        if incident.resolved_at is not None:
            return "resolved"
        return ""

    # -- what the messages say ------------------------------------------------------------------------

    def extras(self, job: Job, route: TargetRoute) -> Callable[[Notification], Extras | None] | None:
        """What the job's first message adds: its escalation step and why, and (text and markdown, with
        `oncall.ack_key` and `server.external_url` set) a link that acknowledges its group."""
        config = self._config()
        receiver = config.receiver(job.receiver)
        if receiver is None or not escalates(receiver.escalation, route.target):
            return None
        mark = route.target.escalation_step
        key = config.oncall.ack_key
        base = config.server.external_url
        expires = self.s.clock() + config.oncall.ack_link_ttl

        def extras(notification: Notification) -> Extras | None:
            url, groups = "", 1
            if key is not None and base:
                # A digest's link acknowledges every group it merged (read from the digest the outbox
                # keeps: the link stays short however many there are).
                if notification.digest_of and notification.digest_groups:
                    group, groups = digest_link_group(job.id), len(notification.digest_groups)
                elif notification.group_key and not notification.digest_of:
                    group = group_id(notification.group_key)
                else:
                    group = ""
                if group:
                    url = (
                        f"{base.rstrip('/')}/ack/{sign(key.reveal().encode(), job.receiver, group, expires)}"
                    )
            if mark is None and not url:
                return None
            return Extras(
                escalated_after=mark.after if mark is not None else None,
                level=level(mark.step) if mark is not None else 0,
                ack_url=url,
                ack_groups=groups,
            )

        return extras

    # -- the timeline ---------------------------------------------------------------------------------

    def delivered(self, job: Job, route: TargetRoute, notification: Notification | None = None) -> None:
        """A receiver's own notification reached WeCom: "notified" on its incident's timeline; a digest's,
        on the timeline of each group it merged. `notification`: the job's payload if already parsed (a
        digest's always is, except when a restart resumed it: a storm's worth of alerts is then parsed
        again, once, beside delivery)."""
        store = self._store()
        receiver = self._config().receiver(job.receiver)
        if store is None or receiver is None or not escalates(receiver.escalation, route.target):
            return
        if route.target.escalation_step is not None:
            return  # a step: "escalated" was written when it was taken
        self.later(self._notified(store, job, route, notification))

    async def _notified(
        self, store: OncallStore, job: Job, route: TargetRoute, notification: Notification | None
    ) -> None:
        if notification is None:
            notification = await self.s.cpu.run(parse, job)
        if notification.digest_of:
            groups = notification.digest_groups  # its own status is the merged alerts': not the groups'
        elif notification.status == "resolved":
            return  # the resolution is on the timeline from the webhook
        else:
            groups = [notification.group_key] if notification.group_key else []
        how = route.target_label + (" (digest)" if notification.digest_of else "")
        for group in groups:
            incident = await store.current(job.receiver, group_id(group))
            if incident is None or incident.started_at > job.created_at + _SLACK:
                continue
            if notification.digest_of and incident.resolved_at is not None:
                continue  # resolved meanwhile: the digest reported its end
            event = IncidentEvent(
                at=self.s.clock(), kind="notified", who=recipients_of(route.target), how=how
            )
            await store.add_event(incident.id, event)

    def later(self, work: Any) -> None:
        """Timeline writes run beside delivery, their failure logged: never on delivery's path."""

        async def run() -> None:
            try:
                await work
            except Exception as exc:
                log.warning("cannot write the incident's timeline: %s", exc)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def busy(self) -> bool:
        """Timeline writes are in progress."""
        return bool(self._background)

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def recipients_of(target: Target) -> list[str]:
    """Who a target reaches, for the timeline: its people, parties and tags, its robot or chat."""
    if isinstance(target, AppTarget):
        people = [
            *target.to_user,
            *(f"party:{p}" for p in target.to_party),
            *(f"tag:{t}" for t in target.to_tag),
        ]
    elif isinstance(target, RobotTarget):
        people = [f"robot:{target.robot}", *(f"@{m}" for m in target.mention)]
    elif isinstance(target, ChatTarget):
        people = [f"chat:{target.chat}"]
    else:  # another channel's (webhook:NAME): as its metrics label names it
        people = [kind_of(target).target_label(target)]
    return people[:50]
