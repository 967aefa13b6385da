"""The storage interface and its records."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class OutboxUnavailable(Exception):
    """The outbox cannot durably accept now (disk full, file unwritable): answer 503 so Alertmanager retries."""


class JobState(enum.StrEnum):
    PENDING = "pending"  # to be sent (maybe partly sent: see sent_parts)
    DONE = "done"
    DEAD = "dead"  # permanent failure or too old: kept with the reason for operators
    MERGED = "merged"  # folded into a digest job (merged_into)


@dataclass(frozen=True)
class NewJob:
    target_key: str  # identifies the target: rate limiting and ordering are per target
    target: str  # the target's spec, JSON
    # The notification for this target (all its alerts, or those routed to it), JSON; as bytes (UTF-8) it
    # is decoded where it is stored, away from the event loop (a webhook's body: megabytes at times).
    payload: str | bytes = ""
    dead_reason: str | None = None  # routed, but undeliverable as it stands (e.g. no valid recipient)


@dataclass(frozen=True)
class Job:
    id: int
    notification_id: int
    receiver: str
    target_key: str
    target: str
    state: JobState
    attempts: int
    sent_parts: int
    created_at: float
    next_attempt_at: float
    updated_at: float
    payload: str  # the notification (webhook body, or a merged digest), JSON
    digest_of: int  # notifications merged into this job; 0 for a plain notification
    last_error: str | None = None
    reason: str | None = None
    merged_into: int | None = None
    # Set just before a message goes to WeCom, cleared when its success is recorded: after a crash, a
    # job with it set may have reached WeCom, so it is resent unchanged (WeCom's duplicate check then
    # drops the copy), never merged into a digest.
    inflight: bool = False


@dataclass(frozen=True)
class AcceptResult:
    notification_id: int | None  # None when the notification was an HA duplicate
    duplicate: bool


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    oldest_pending_age: float  # seconds; 0 when nothing is pending


class Outbox(Protocol):
    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult: ...

    async def pending_targets(self) -> list[str]: ...

    async def next_due(self, target_keys: list[str]) -> dict[str, float | None]: ...

    async def pending_jobs(self, target_key: str, now: float, limit: int, after_id: int = 0) -> list[Job]:
        """Up to `limit` due pending jobs of the target with ids above `after_id`, oldest first. On the
        first page (`after_id` 0) a job already partly sent (or in flight) comes first, wherever it is
        in the backlog."""
        ...

    async def sending(self, job_id: int, now: float) -> None: ...

    async def progress(self, job_id: int, sent_parts: int, now: float) -> None: ...

    async def done(self, job_id: int, now: float) -> None: ...

    async def retry_later(
        self,
        job_id: int,
        attempts: int,
        next_attempt_at: float,
        error: str,
        reason: str,
        now: float,
        maybe_delivered: bool = False,
    ) -> None: ...

    async def dead(self, job_id: int, error: str, reason: str, now: float) -> None: ...

    async def merge(self, jobs: list[Job], payload: str, digest_of: int, now: float) -> Job: ...

    async def record_send(self, rate_keys: list[str], at: float) -> None: ...

    async def recent_sends(self, since: float) -> list[tuple[str, float]]: ...

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]: ...

    async def get_job(self, job_id: int) -> Job | None: ...

    async def requeue(self, job_ids: list[int] | None, now: float) -> int: ...

    async def purge(self, states: list[JobState], older_than: float) -> int: ...

    async def forget_dedup(self, older_than: float) -> None: ...

    async def prune_sends(self, older_than: float) -> None: ...

    async def stats(self, now: float) -> OutboxStats: ...

    async def check_writable(self, now: float) -> str | None:
        """Why `accept` would fail now (readiness), or None when it can commit. Cheap enough to be
        called by every readiness probe; never slows `accept`."""
        ...

    async def close(self) -> None: ...
