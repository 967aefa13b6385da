"""An escalation policy's steps as outbox jobs: stored with the first notification of an incident, each
due at its delay (`NewJob.due_at`), so that a restart or a dead replica never loses one.

Each step's target is stored with an `EscalationMark` (the policy, the round, the step, its delay): it
tells delivery that the job is a step, to be checked when due (acknowledged? silenced? resolved?) and
taken once (oncall/store.py `take_step`), and it tells the renderer which step it is and why. The target
key is the receiver's, the policy's, the round's, the step's and the target's: the same step of every
incident of the receiver shares one line, so that a storm's escalations go out as digests, paced like
every other message. Their delays are equal, so the line's jobs fall due in the order they were stored.
"""

from __future__ import annotations

from alertmanager_wecom.config import EscalationPolicy, target_spec
from alertmanager_wecom.config.targets import EscalationMark
from alertmanager_wecom.ingest.routing import target_key
from alertmanager_wecom.outbox import NewJob

# What people call an incident, at most this long (the group labels come from alert data).
TITLE_CHARS = 200


def step_jobs(
    receiver: str, name: str, policy: EscalationPolicy, payload: str | bytes, started_at: float
) -> list[NewJob]:
    """Every step of every round of `policy`, due at `started_at` (the incident's first notification)
    plus its delay, carrying the notification `payload` as it came."""
    jobs: list[NewJob] = []
    for round_, index, offset in policy.due_offsets():
        for ordinal, target in enumerate(policy.steps[index].targets):
            mark = EscalationMark(policy=name, round=round_, step=index, after=offset, target=ordinal)
            spec = target_spec(target.model_copy(update={"escalation_step": mark}))
            jobs.append(
                NewJob(
                    target_key=target_key(receiver, spec),
                    target_spec=spec,
                    payload=payload,
                    due_at=started_at + offset,
                )
            )
    return jobs


def incident_title(group_labels: dict[str, str], common_labels: dict[str, str]) -> str:
    """``alertname · label=value …`` of the group, bounded: what the timeline and the console show."""
    labels = group_labels or common_labels
    name = labels.get("alertname") or common_labels.get("alertname") or ""
    rest = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    title = " · ".join(part for part in (name, rest) if part) or "(no labels)"
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
