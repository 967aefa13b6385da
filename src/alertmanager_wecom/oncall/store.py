"""The on-call store's contract: what schedules and escalations must remember, durably and shared by
every replica: overrides of the schedules (a person covers a time range), and each alert group's
incidents with their timeline (notified, escalated, acknowledged, silenced, resolved).

An incident is one firing of one alert group of one receiver: it opens with the group's first firing
notification and ends when the group resolves; the next firing opens a new one. Escalation steps are
jobs in the outbox (due at a time); when one is due, delivery asks this store whether the incident was
acknowledged, silenced or resolved, and takes the step once (`take_step`: one atomic step, so that a
step stored twice, or seen by two replicas, fires once).

Backends: SQLite (`sqlite_store.py`, a file beside the outbox, one process) and Redis (`redis_store.py`,
the outbox's Redis, replicas), chosen by `storage.backend`; one contract suite runs on both
(tests/test_oncall_store_contract.py). Times are the caller's clock (seconds since 1970).
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass, field
from typing import Literal

# What happened to an incident (its timeline).
EventKind = Literal["opened", "notified", "escalated", "skipped", "acknowledged", "silenced", "resolved"]
# How an acknowledgement was made.
AckHow = Literal["card", "link", "console", "api", "cli"]
MOST_EVENTS = 200  # per incident: a flapping group's timeline stays readable and bounded


def group_id(group_key: str) -> str:
    """A short, fixed-size name of an alert group (Alertmanager's groupKey holds label values: long,
    and alert data): what links, keys and URLs carry instead of the key itself."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Override:
    """`user` is on call for `schedule` from `start` to `end` (instead of whoever the rotation says)."""

    id: str
    schedule: str
    user: str
    start: float
    end: float
    created_by: str = ""
    created_at: float = 0.0


@dataclass(frozen=True)
class IncidentEvent:
    at: float
    kind: EventKind
    # The people concerned (notified, escalated to) or the actor (acknowledged, silenced): userids,
    # robot names, "webhook:NAME"; never more than a few dozen.
    who: list[str] = field(default_factory=list)
    # How (ack: card | link | console | api | cli; escalated: "step 2"), free text for people.
    how: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Incident:
    id: str
    receiver: str
    group_key: str
    group_id: str
    title: str  # what people call it: the alertname and group labels, bounded
    policy: str | None  # the escalation policy, None when the receiver has none
    started_at: float  # the first firing notification was accepted
    scheduled: bool = False  # its escalation steps are stored in the outbox
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    acknowledged_how: str | None = None
    silenced_at: float | None = None
    resolved_at: float | None = None
    events: list[IncidentEvent] = field(default_factory=list)  # oldest first, at most MOST_EVENTS

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def stop_reason(self) -> str | None:
        """Why escalation stops, or None while nobody has acknowledged, silenced or resolved it."""
        if self.acknowledged_at is not None:
            return f"acknowledged by {self.acknowledged_by} ({self.acknowledged_how})"
        if self.silenced_at is not None:
            return "silenced"
        if self.resolved_at is not None:
            return "resolved"
        return None


class OncallStore(abc.ABC):
    # -- overrides ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_override(self, override: Override) -> None:
        """Store an override (one with the same id is replaced)."""

    @abc.abstractmethod
    async def remove_override(self, override_id: str) -> bool:
        """Remove it; False when there was none with this id."""

    @abc.abstractmethod
    async def overrides(self, schedule: str | None, start: float, end: float) -> list[Override]:
        """The overrides of `schedule` (every schedule: None) that overlap [start, end), by start."""

    # -- incidents ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def open_incident(
        self, receiver: str, group_key: str, title: str, policy: str | None, at: float
    ) -> tuple[Incident, bool]:
        """The group's open incident, or a new one started at `at` (then True, and an "opened" event),
        in one atomic step: two replicas accepting the group's first notifications open one incident."""

    @abc.abstractmethod
    async def mark_scheduled(self, incident_id: str) -> None:
        """Its escalation steps are in the outbox (a notification accepted later stores none again)."""

    @abc.abstractmethod
    async def incident(self, incident_id: str) -> Incident | None: ...

    @abc.abstractmethod
    async def current(self, receiver: str, group_id: str) -> Incident | None:
        """The group's open incident, else its latest one, else None."""

    @abc.abstractmethod
    async def incidents(self, limit: int = 100, open_only: bool = False, offset: int = 0) -> list[Incident]:
        """The newest (by start) first, from the `offset`-th (paging past the newest)."""

    @abc.abstractmethod
    async def add_event(self, incident_id: str, event: IncidentEvent) -> None:
        """Append to the timeline (past MOST_EVENTS the oldest events after "opened" go)."""

    @abc.abstractmethod
    async def acknowledge(self, incident_id: str, user: str, how: str, at: float) -> bool:
        """The first acknowledgement of an open incident is kept (True, and an "acknowledged" event);
        a later one, or one of a resolved incident, changes nothing (False)."""

    @abc.abstractmethod
    async def silenced(self, incident_id: str, user: str, at: float, detail: str) -> None:
        """A silence made from a card: escalation stops (and a "silenced" event)."""

    @abc.abstractmethod
    async def resolve(self, receiver: str, group_id: str, at: float) -> Incident | None:
        """The group resolved: its open incident ends (and a "resolved" event); None when none was open."""

    @abc.abstractmethod
    async def take_step(self, incident_id: str, round_: int, step: int, taker: str) -> bool:
        """Whether `taker` (an outbox job's id) may take this step of this incident, atomically: True the
        first time, and again for the same `taker` (the same job asking after a restart); False for any
        other taker (a copy of the step stored twice, or another replica's)."""

    # -- retention and life ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge(self, now: float, keep: float) -> int:
        """Forget incidents resolved before `now - keep` (with their steps) and overrides that ended
        before it; how many incidents went."""

    @abc.abstractmethod
    async def close(self) -> None: ...
