"""One description of an outbox job, for every place that shows one: the CLI (`outbox list/show`), the
admin API (`GET /api/outbox`) and the console. The target is said as its channel says it (`app ops →
zhangsan`, `robot sre`, `chat ops/c1`), never as the stored JSON; a spec that no longer parses (written
by a newer version, or damaged) is shown cut, not an error."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.config import parse_target
from alertmanager_wecom.outbox import Job


@dataclass(frozen=True)
class JobDescription:
    id: int
    receiver: str
    target: str  # as its channel describes it
    target_spec: str  # as stored with the job
    state: str
    alertnames: str  # the first few, read without parsing a large body
    created_at: float
    reason: str
    error: str
    attempts: int
    sent_parts: int
    digest_of: int

    def as_json(self) -> dict[str, Any]:
        """For the admin API: `target` stays the stored target (as before), `to` says it in words."""
        try:
            spec: Any = json.loads(self.target_spec)
        except ValueError:
            spec = self.target_spec
        return {
            "id": self.id,
            "receiver": self.receiver,
            "state": self.state,
            "target": spec,
            "to": self.target,
            "alertnames": self.alertnames,
            "attempts": self.attempts,
            "sent_parts": self.sent_parts,
            "created_at": self.created_at,
            "reason": self.reason or None,
            "error": self.error or None,
            "digest_of": self.digest_of,
        }

    def line(self) -> str:
        """For the CLI: one line."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_at))
        extra = f" digest_of={self.digest_of}" if self.digest_of else ""
        why = f"  {self.reason}: {self.error}" if self.error else ""
        names = f" [{self.alertnames}]" if self.alertnames else ""
        return (
            f"{self.id:>7} {self.state:<8} {when} receiver={self.receiver} {self.target}{names}"
            f" attempts={self.attempts} sent_parts={self.sent_parts}{extra}{why}"
        )


def describe_job(job: Job) -> JobDescription:
    try:
        target = parse_target(job.target_spec)
        said = kind_of(target).describe(target)
    except ValueError:
        said = job.target_spec[:80]
    return JobDescription(
        id=job.id,
        receiver=job.receiver,
        target=said,
        target_spec=job.target_spec,
        state=job.state.value,
        alertnames=alert_names(job.payload[:200_000]),
        created_at=job.created_at,
        reason=job.reason or "",
        error=job.last_error or "",
        attempts=job.attempts,
        sent_parts=job.sent_parts,
        digest_of=job.digest_of or 0,
    )


def alert_names(payload: str) -> str:
    """The alert names of a stored notification, read without parsing the whole body (it may be large)."""
    names: list[str] = []
    start = 0
    while len(names) < 5:
        at = payload.find('"alertname":', start)
        if at < 0:
            break
        try:
            value, end = json.JSONDecoder().raw_decode(payload, payload.index('"', at + 12))
        except ValueError:
            break
        if isinstance(value, str) and value not in names:
            names.append(value)
        start = end
    return ", ".join(names)
