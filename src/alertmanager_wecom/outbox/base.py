"""The outbox's interface and records: the contract every backend keeps.

`tests/test_outbox_contract.py` checks each rule written here, through this interface only, for every
backend. A rule a backend keeps but that is not written here is an accident the others need not copy.

Rules for every method
----------------------
- Atomic: a call's effects are stored all together or not at all, and a failure of one call undoes no
  other (calls made at the same time may share a transaction; they do not share its fate).
- Durable and visible once awaited: when the await returns, the change survives a crash of the process
  (and, with `storage.synchronous: full`, of the machine), and every call issued afterwards, from this
  object or another opened on the same storage, sees it.
- Failures of the storage (disk full, file unwritable, locked too long) raise `OutboxUnavailable`; after
  `close`, every method raises it (`check_writable` returns the reason instead).
- Times are what the caller passes as `now` (seconds, the relay's clock): a backend never reads a clock
  for the rules below, so tests can run on a fake one.
- Job ids are positive integers below 2**63, increasing in the order jobs are stored (the ids of
  purged jobs may be given again).
- A job id the outbox does not know (never stored, or purged) is ignored by every method that takes one.

Ordering
--------
Jobs are kept per target (`target_key`) and handed out in id order, that is the order they were stored:
first in, first out, per target. Two exceptions, both so that a message split in parts is finished
before anything else: a job already partly sent (`sent_parts > 0`) or in flight (`inflight`) comes
first (`pending_jobs`). A job is handed out only once it is due (`next_attempt_at <= now`); a failed job
holds back the whole target (`retry_later`), so that later notifications do not overtake it. A digest
(`merge`) is stored with a new id, after the jobs it replaces; the dispatcher sends it at once.

`created_at` is a job's age clock, not its place in the line: `max_age` and `oldest_pending_age` count
from it; `merge` keeps the oldest, `requeue` restarts it.

Crashes
-------
The dispatcher's steps for one message are `sending` (write-ahead) → the WeCom call → `progress` (and
`record_send`); after the last message, `done`. What a crash (kill -9, power loss: the same as closing
and opening the storage again) leaves behind:
- before `accept` returned: the notification is stored entirely or not at all. Alertmanager gets no 2xx
  and sends it again; if the first copy was in fact stored, its dedup key makes the second a duplicate.
- after `sending`, before `progress`: the job is pending with `inflight` set and the same `sent_parts`.
  The message may have reached WeCom, so it is sent again unchanged (WeCom's duplicate check drops the
  copy), first in its target's line, and never merged into a digest.
- after `progress`: the job resumes at the next part; the parts sent are not sent again.
- during `merge` or `retry_later`: all of it or nothing (atomic).
- nothing else is lost: pending jobs stay pending, with their attempts, until delivered, dead or requeued.

Targets
-------
`target` is the target's spec as a JSON string (`Target.model_dump_json`): it is the storage format,
kept as written at accept time, so that a job is sent as it was routed even after the configuration
changes. The outbox never parses it; `config.parse_target` does, where a target is needed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from alertmanager_wecom.reasons import Reason


class OutboxUnavailable(Exception):
    """The outbox cannot durably accept now (disk full, file unwritable): answer 503 so Alertmanager retries.

    `logged`: the backend has logged this outage itself, once a minute however many calls fail
    (`repeated.Repeated`), so the caller need not log each one again."""

    def __init__(self, message: str, logged: bool = False) -> None:
        super().__init__(message)
        self.logged = logged


class JobState(enum.StrEnum):
    PENDING = "pending"  # to be sent (maybe partly sent: see sent_parts)
    DONE = "done"
    DEAD = "dead"  # permanent failure or too old: kept with the reason for operators
    MERGED = "merged"  # folded into a digest job (merged_into)


@dataclass(frozen=True)
class NewJob:
    target_key: str  # identifies the target: rate limiting and ordering are per target
    target_spec: str  # the target as stored, JSON (see "Targets" above; the stored key is "target")
    # The notification for this target (all its alerts, or those routed to it), JSON; as bytes (UTF-8) it
    # is decoded where it is stored, away from the event loop (a webhook's body: megabytes at times).
    # Jobs of one `accept` that share one payload object share its stored copy.
    payload: str | bytes = ""
    # Routed, but undeliverable as it stands (no valid recipient): the job is stored DEAD with this as
    # its `last_error` and `Reason.RECIPIENTS` as its reason, so that operators see it with the others.
    dead_reason: str | None = None
    # The webhook span's context (W3C traceparent) when tracing is on: stored with the job and handed
    # back by every read, so that its delivery continues the trace, also after a restart. Opaque here.
    traceparent: str | None = None
    # Not handed out before this time (`next_attempt_at`; an escalation step waits for its delay); None:
    # due at once. Its age clock (`created_at`) still starts at the accept.
    due_at: float | None = None


@dataclass(frozen=True)
class Job:
    id: int
    notification_id: int
    receiver: str
    target_key: str
    target_spec: str  # the target as accepted, JSON (stored under "target")
    state: JobState
    attempts: int  # failed attempts so far (set by retry_later, reset by requeue)
    sent_parts: int  # messages of this job WeCom has accepted (set by progress)
    created_at: float  # the age clock: see "Ordering" above
    next_attempt_at: float  # not handed out by pending_jobs before this time
    updated_at: float  # the last change (purge counts age from it)
    payload: str  # the notification (webhook body, or a merged digest), JSON
    digest_of: int  # notifications merged into this job; 0 for a plain notification
    last_error: str | None = None
    reason: str | None = None  # a `Reason` value, set with last_error by retry_later and dead
    merged_into: int | None = None  # for a MERGED job: the digest job's id
    # Set just before a message goes to WeCom, cleared when its success is recorded: after a crash, a
    # job with it set may have reached WeCom, so it is resent unchanged (WeCom's duplicate check then
    # drops the copy), never merged into a digest.
    inflight: bool = False
    # As accepted (`NewJob.traceparent`); a digest's is that of the first merged job that has one (see
    # `merge`). None for jobs stored before the field existed.
    traceparent: str | None = None


class LeaseLost(Exception):
    """The write-ahead found the target's lease held by another replica (or by nobody): this replica was
    paused or cut off past its lease, another may be sending to the target now, so it must not send."""


@dataclass(frozen=True)
class SendClaim:
    """What a shared backend checks, and records, in the write-ahead's own atomic step (see `sending`).

    `limits`: each rate key of the message with its windows, (at most this many sends, in this many
    seconds), headroom applied, as the channel declares them."""

    target_key: str
    owner: str  # the lease on `target_key` must be this owner's
    limits: tuple[tuple[str, tuple[tuple[int, float], ...]], ...]


@dataclass(frozen=True)
class WriteAhead:
    """`sending`'s answer. `wait` 0: written. Above 0: no room under a rate key's limits, nothing written,
    try again in `wait` seconds; `sends` then holds the shared ledger's sends (times) of each rate key
    within a day, so that the caller's own view of the limits catches up with the other replicas'."""

    wait: float = 0.0
    sends: dict[str, list[float]] = field(default_factory=dict)
    # Written by `claim_send` on a shared backend: the ledger's entries for the send, for `sent`.
    counted: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceptResult:
    notification_id: int | None  # None when the notification was an HA duplicate (or had no jobs)
    duplicate: bool


@dataclass(frozen=True)
class OutboxStats:
    pending: int  # PENDING jobs, due or not
    dead: int
    oldest_pending_age: float  # seconds since the smallest created_at of a PENDING job; 0 when none


class Outbox(Protocol):
    # Whether several processes (replicas) may use this storage at once: then the dispatcher takes
    # leases on targets and reads other replicas' sends and targets from it.
    shared: bool

    # -- ingest ---------------------------------------------------------------------------------------

    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult:
        """Store one notification's jobs (one per target), PENDING and due at `now` or at their
        `due_at` (or DEAD, see `NewJob.dead_reason`), created at `now`; the webhook is answered 2xx only
        after this returns.

        HA dedup: when `dedup_key` was accepted less than `dedup_window` seconds before `now`, nothing
        is stored and the result says `duplicate` (another Alertmanager replica sent the same
        notification). The window counts from the acceptance that stored it: a duplicate does not
        extend it; once it has passed, the key is accepted and stored again (a real repeat). No key:
        no check. The key and the jobs are stored in one step: a failed accept leaves no key behind, so
        Alertmanager's retry is not taken for a duplicate.

        Returns the stored notification's id (the first one's, when the jobs carry different payloads)."""
        ...

    async def check_writable(self, now: float) -> str | None:
        """Why `accept` would fail now (readiness), or None when it can commit. Cheap enough to be
        called by every readiness probe; never slows `accept`. After an `accept` refused because the
        outbox was full, it keeps reporting full until there is room for that notification again."""
        ...

    # -- dispatch -------------------------------------------------------------------------------------

    async def pending_targets(self) -> list[str]:
        """Each target key with at least one PENDING job, due or not, once, in no particular order."""
        ...

    async def next_due(self, target_keys: list[str]) -> dict[str, float | None]:
        """For each key given: when `pending_jobs` will next hand out a job: the `next_attempt_at` of
        its first PENDING job (lowest id) or of a started one, whichever is earlier; None when it has
        none. Cheap per key whatever the backlog (called for every idle target each round)."""
        ...

    async def pending_jobs(self, target_key: str, now: float, limit: int, after_id: int = 0) -> list[Job]:
        """Up to `limit` due (`next_attempt_at <= now`) PENDING jobs of the target with ids above
        `after_id`, in id order, ending before the first job that is not due (no job overtakes an
        earlier one that waits, see `retry_later`). On the first page (`after_id` 0) the due jobs already started
        (`sent_parts > 0` or `inflight`) come first, wherever they are in the backlog (then not again in
        their place; the page may exceed `limit` by their number); later pages (`after_id` > 0) list
        them in their place like the others. Reads only."""
        ...

    async def lease(self, target_key: str, owner: str, seconds: float) -> bool:
        """Hold the target for `seconds` (take it, or extend it when `owner` holds it already): while
        held, no other owner's lease on it succeeds, so that replicas sharing the outbox never send to
        one target at the same time. False: another owner holds it. A backend that only one process
        can open may always say True. The write-ahead checks it again (`sending` with a claim), so that
        an owner stalled past its lease does not send."""
        ...

    async def listen(self, on_new: Callable[[list[str]], None]) -> None:
        """Call `on_new` with the target keys of notifications other processes accept, as they accept
        them, until closed (or cancelled): replicas wake each other instead of waiting for their next
        round. A backend that only one process can open returns at once."""
        ...

    async def release(self, target_key: str, owner: str) -> None:
        """Give the target up, if `owner` holds it (another's lease is left alone)."""
        ...

    async def sending(self, job_id: int, now: float, claim: SendClaim | None = None) -> WriteAhead:
        """Write-ahead before a message goes to WeCom: sets `inflight` (see `Job.inflight`). Repeating
        it changes nothing more.

        `claim`, given only to a shared backend (replicas), makes it one atomic step with two checks and
        a record, so that replicas never decide from a stale view: when `claim.owner` does not hold the
        lease on `claim.target_key`, nothing is written and `LeaseLost` is raised; when a rate key has no
        room in one of its windows at `now` (counting every send recorded under it, by any process),
        nothing is written and the answer says how long to wait; otherwise the send is also recorded at
        `now` under each rate key, as `record_send` would (the caller does not record it again). A
        later `retry_later` with `maybe_delivered` False takes that record back (WeCom did not take the
        message, so it does not count); a crash leaves it (the message may have reached WeCom)."""
        ...

    async def claim_send(self, now: float, claim: SendClaim) -> WriteAhead:
        """A send that is no job's (a chart, after its notification's text), counted as `sending` with
        a claim counts a job's, in one atomic step: when a rate key has no room in one of its windows
        at `now` (counting every process's sends), nothing is recorded and the answer says how long to
        wait; otherwise the send is recorded at `now` under each rate key. No lease is checked (the
        chart follows its text, whichever replica holds the target now). Only a shared backend is
        asked; one that only one process opens records the send (that process's limiter decided)."""
        ...

    async def sent(self, counted: tuple[str, ...], now: float) -> None:
        """WeCom took the send `claim_send` answered with `counted` (its `WriteAhead.counted`): it counts
        from `now`, when WeCom answered, not from the claim (as `progress` does for a job's send)."""
        ...

    async def progress(self, job_id: int, sent_parts: int, now: float) -> None:
        """WeCom accepted message `sent_parts` (counting from 1): sets `sent_parts` (a number, not an
        increment: repeating it changes nothing more) and clears `inflight`."""
        ...

    async def done(self, job_id: int, now: float) -> None:
        """Every message of the job was accepted: DONE, `last_error` cleared. Idempotent."""
        ...

    async def retry_later(
        self,
        job_id: int,
        attempts: int,
        next_attempt_at: float,
        error: str,
        reason: Reason,
        now: float,
        maybe_delivered: bool = False,
    ) -> None:
        """A transient failure: the job stays PENDING with `attempts` (a number the caller counted, not an
        increment), `last_error`, `reason`, and is not due before `next_attempt_at`.

        The whole target waits: every job of the target PENDING now gets `next_attempt_at` raised to at
        least this one's (never lowered), so that later notifications do not overtake the failed one.
        Jobs of the target accepted while it waits wait too, also across a restart: `pending_jobs`
        hands jobs out in id order and stops at the first that is not due, so a failed notification is
        never overtaken by a later one.

        `inflight` becomes `maybe_delivered`: set when WeCom may have received the message (a timeout
        after sending), so that it is resent unchanged first; cleared when it surely did not.
        Repeating the call with the same arguments changes nothing more."""
        ...

    async def dead(self, job_id: int, error: str, reason: Reason, now: float, refused: bool = False) -> None:
        """A permanent failure: DEAD, with `last_error` and `reason`, kept for operators (`requeue`).
        Attempts, parts sent and `inflight` are kept as they are. Repeating it overwrites the error.

        `refused`: WeCom answered that it did not take the message, so the send the last write-ahead
        counted under the limits (a claim, on a shared outbox) is given back, as `retry_later` does when
        the message was surely not delivered; without it, a send that may have reached WeCom stays counted."""
        ...

    async def merge(self, jobs: list[Job], payload: str, digest_of: int, now: float) -> Job:
        """Replace `jobs` (PENDING, of one target, none started: the caller's duty) by one digest job and
        return it: a new PENDING job (new id, a new notification holding `payload`) for the first job's
        receiver and target, due at `now`, with `digest_of`, attempts 0, nothing sent, and the smallest
        `created_at` of the jobs and the `traceparent` of the first of them (in the order given) that has
        one. The jobs become MERGED with `merged_into` the digest's id. All in one step. Not idempotent:
        merging the same jobs again makes another digest."""
        ...

    async def record_send(self, rate_keys: list[str], at: float) -> None:
        """Remember one send at `at` under each rate key (for WeCom's limits after a restart). Each call
        adds records: not idempotent."""
        ...

    async def recent_sends(self, since: float) -> list[tuple[str, float]]:
        """The sends recorded at `since` or later, as (rate key, at), oldest first, sends recorded at the
        same time in the order they were recorded."""
        ...

    # -- operators and housekeeping -------------------------------------------------------------------

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        """Up to `limit` jobs in `state` (any state: None), newest (highest id) first."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """The job in whatever state, or None when there is none with this id (never stored, or purged)."""
        ...

    async def requeue(self, job_ids: list[int] | None, now: float) -> int:
        """Dead letters back to PENDING, due at `now`, attempts 0, `created_at` = `now` (a fresh
        `max_age`: the operator fixed the cause); `sent_parts` and `inflight` are kept, so a job dead
        halfway resumes at the part that failed. `job_ids` None: every DEAD job. Jobs that are not DEAD
        (or unknown) are left alone. Returns how many jobs were requeued, each once: repeating the call
        requeues nothing more. A requeued job keeps its id, hence its place in its target's line."""
        ...

    async def purge(self, states: list[JobState], older_than: float, job_ids: list[int] | None = None) -> int:
        """Delete the jobs in `states` last changed (`updated_at`) before `older_than` (and among
        `job_ids`, when given), and the stored notifications no remaining job refers to; returns how many
        jobs. Deletes nothing else (dedup keys
        and sends: `forget`). Callers never pass PENDING (the CLI does not offer it)."""
        ...

    async def forget(self, dedup_before: float, sends_before: float) -> None:
        """Housekeeping: drop the dedup keys accepted before `dedup_before` (a later copy of such a
        notification is accepted) and the sends recorded before `sends_before`."""
        ...

    async def stats(self, now: float) -> OutboxStats:
        """Counts for metrics and `outbox list` (see `OutboxStats`)."""
        ...

    async def close(self) -> None:
        """Finish the calls in progress, release the storage. Idempotent. What is stored stays: a
        backend opened again on the same storage carries on where this one stopped (in-flight jobs:
        see "Crashes" above)."""
        ...
