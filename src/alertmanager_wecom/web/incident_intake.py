"""The webhook's part in on-call: a receiver with an escalation policy opens an incident with the group's
first firing notification and stores the policy's steps with it (ingest/escalation.py), in the same
accept; the group's resolution ends the incident (oncall/store.py).

Both happen before the webhook is answered 2xx: when the on-call store cannot record them, the webhook
answers 503 and Alertmanager retries, so that no incident goes without its steps and no resolved group
keeps escalating. Steps stored twice (a crash between the accept and `mark_scheduled`, or two replicas
opening the same incident) are taken once when due (`take_step`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alertmanager_wecom.config import Config, Receiver, parse_target
from alertmanager_wecom.ingest.escalation import incident_title, step_jobs
from alertmanager_wecom.ingest.payload import Webhook
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.oncall.store import Incident, OncallStore, group_id
from alertmanager_wecom.outbox import NewJob

log = logging.getLogger(__name__)


class IncidentUnavailable(Exception):
    """The on-call store did not answer: the webhook answers 503 (Alertmanager retries)."""


@dataclass
class Intake:
    """What one webhook did to its group's incident: `scheduled` is set when its jobs carry the steps."""

    incident: Incident | None = None
    scheduled: bool = False


async def before_accept(
    store: OncallStore | None,
    config: Config,
    receiver: Receiver,
    webhook: Webhook,
    payload: str | bytes,
    jobs: list[NewJob],
    now: float,
    metrics: Metrics,
) -> tuple[list[NewJob], Intake]:
    """The jobs to accept (with the steps when the incident has none stored yet), and what was done."""
    intake = Intake()
    if store is None or not config.oncall.escalations:  # no on-call: nothing to look up on this path
        return jobs, intake
    # The receiver's policy, else that of the first target the notification went to that names one.
    name = receiver.escalation or next(
        (found for job in jobs if (found := parse_target(job.target_spec).escalation) is not None), None
    )
    group_key = webhook.get("groupKey", "")
    if name is None or not group_key or not webhook["alerts"]:
        return jobs, intake
    policy = config.oncall.escalations.get(name)
    if policy is None:
        return jobs, intake
    try:
        if webhook["status"] == "resolved":
            ended = await store.resolve(receiver.name, group_id(group_key), now)
            if ended is not None:
                metrics.time_to_resolve.labels(receiver.name).observe(max(0.0, now - ended.started_at))
            return jobs, intake
        title = incident_title(webhook.get("groupLabels", {}), webhook.get("commonLabels", {}))
        incident, _new = await store.open_incident(receiver.name, group_key, title, name, now)
    except Exception as exc:
        log.error("receiver %s: cannot record the incident: %s", receiver.name, exc)
        raise IncidentUnavailable(str(exc)) from exc
    intake.incident = incident
    if incident.scheduled:
        return jobs, intake
    intake.scheduled = True
    return jobs + step_jobs(receiver.name, name, policy, payload, incident.started_at), intake


async def after_accept(store: OncallStore | None, intake: Intake, receiver: str) -> None:
    """The steps are stored: a later notification of the incident stores none again. Failing here costs
    only a second copy of the steps with the next notification (taken once), so it is logged, not 503."""
    if store is None or intake.incident is None or not intake.scheduled:
        return
    try:
        await store.mark_scheduled(intake.incident.id)
    except Exception as exc:
        log.warning(
            "receiver %s: incident %s: steps stored, not marked: %s", receiver, intake.incident.id, exc
        )
