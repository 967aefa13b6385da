"""The outbox on Redis, for several replicas sharing one store: the same `Outbox` contract as SQLite
(tests/test_outbox_contract.py runs on both), writes as server-side Lua scripts (scripts.py), reads as
pipelined lookups.

Durability is Redis's: with ``appendfsync always`` an acknowledged write is on disk (checked at start
where CONFIG GET is allowed, `durability_warning`); `min_replicas` adds a WAIT for that many replicas
after each batch of acceptances, on the connection that wrote them (batch.py). Redis unreachable, frozen, read-only or out of memory raises `OutboxUnavailable`:
the webhook answers 503, so Alertmanager retries; recovery is automatic (each call reconnects). How a
call is bounded in time and when it is tried again: calls.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from alertmanager_wecom.outbox.base import AcceptResult, Job, JobState, NewJob, OutboxStats, OutboxUnavailable
from alertmanager_wecom.outbox.redis import ledger, scripts
from alertmanager_wecom.outbox.redis.batch import AcceptBatches
from alertmanager_wecom.outbox.redis.calls import RedisCalls, durability_warning, open_redis
from alertmanager_wecom.outbox.redis.purge import purge_in_batches
from alertmanager_wecom.reasons import Reason

log = logging.getLogger(__name__)
T = TypeVar("T")
# Readiness: how long the test write (and the WAIT for min_replicas, up to 1s) may take. A frozen Redis
# (SIGSTOP, a stalled disk under appendfsync always) answers nothing: the socket timeout would make
# /readyz wait 5s or more, longer than the probes that call it wait.
PROBE_SECONDS = 1.2
_SCRIPTS: tuple[str, ...] = (
    "ACCEPT",
    "JOBS",
    "PROBE",
    "SENDING",
    "PROGRESS",
    "SENT",
    "DONE",
    "DEAD",
    "RETRY_LATER",
    "MERGE",
    "REQUEUE",
    "PURGE",
    "RECORD_SEND",
    "LEASE",
    "RELEASE",
)
# The scripts a broken connection may run twice (calls.py): each sets values (a state, a number, a
# flag) that a second run sets again to the same, or moves or deletes only what still matches (REQUEUE
# and PURGE: a second run after a first that was not answered finds nothing and counts 0). Not MERGE
# (a second digest), RECORD_SEND (a second send counted), nor the leases' scripts (their owners' to
# judge); ACCEPT only under a dedup key (`accept`).
_RETRY_SAFE = frozenset(
    {"PROBE", "SENDING", "PROGRESS", "SENT", "DONE", "DEAD", "RETRY_LATER", "REQUEUE", "PURGE"}
)
_FIELDS = (
    "notification_id",
    "receiver",
    "target_key",
    "target",
    "state",
    "attempts",
    "sent_parts",
    "created_at",
    "next_attempt_at",
    "updated_at",
    "digest_of",
    "last_error",
    "reason",
    "merged_into",
    "inflight",
    "traceparent",  # absent from jobs stored before tracing (HMGET gives None)
)


def _job(job_id: int, values: list[Any], payload: str | None) -> Job:
    # Unpacked in `_FIELDS`' order, not through a dict: the dispatcher reads pages of 100 jobs on the
    # event loop (7 µs a job this way, 14 through a dict and keywords).
    (
        nid,
        receiver,
        target_key,
        target,
        state,
        attempts,
        sent_parts,
        created_at,
        next_attempt_at,
        updated_at,
    ) = values[:10]
    digest_of, last_error, reason, merged_into, inflight, traceparent = values[10:]
    return Job(
        job_id,
        int(nid),
        receiver,
        target_key,
        target,  # target_spec: the stored key stays "target"
        JobState(state),
        int(attempts),
        int(sent_parts),
        float(created_at),
        float(next_attempt_at),
        float(updated_at),
        payload or "",
        int(digest_of),
        last_error or None,
        reason or None,
        int(merged_into) if merged_into else None,
        inflight == "1",
        traceparent or None,
    )


def _utf8(payload: str | bytes) -> str | bytes:
    """The payload as Redis stores it: UTF-8, for reads decode it strictly. Bytes that are not valid UTF-8
    are decoded with replacement characters (as SQLite's store does); those that are (a webhook's body: its
    JSON parser checked it) go as they came, not decoded here to be encoded again by redis-py: that took
    12 µs an acceptance for the benchmark's 4.4 KB with Chinese text, the check takes 5 (none if ASCII)."""
    if isinstance(payload, str) or payload.isascii():
        return payload
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("utf-8", errors="replace")
    return payload


class RedisOutbox:
    shared = True  # replicas share it

    def __init__(
        self,
        url: str,
        key_prefix: str = "amw",
        min_replicas: int = 0,
        timeout: float = 2.0,
        password: str | None = None,
    ) -> None:
        self.prefix = key_prefix
        self.min_replicas = min_replicas
        self._redis: Any = open_redis(url, timeout, password)
        self._calls = RedisCalls(self._redis, timeout, log)
        self._scripts = {name: self._redis.register_script(getattr(scripts, name)) for name in _SCRIPTS}
        self._scripts["CLAIM"] = self._redis.register_script(ledger.CLAIM)
        self._accepts = AcceptBatches(
            self._calls, self._scripts["ACCEPT"], key_prefix, self._key("wake"), min_replicas
        )

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    async def _call(self, work: Callable[[], Awaitable[T]], retry: bool = False, write: bool = False) -> T:
        return await self._calls(work, retry, write)

    async def _run(self, name: str, *args: object, retry: bool | None = None) -> Any:
        """Run a script; tried again on a broken connection when `retry` (by default: when the script
        is one of `_RETRY_SAFE`)."""
        script = self._scripts[name]
        values: list[Any] = [self.prefix, *args]
        again = name in _RETRY_SAFE if retry is None else retry
        return await self._call(lambda: script(keys=[], args=values), again)

    async def durability_warning(self) -> str | None:
        """Why an acknowledged notification could still be lost (None: appendfsync always), checked
        once at start where CONFIG GET is allowed."""
        return await durability_warning(self._redis)

    # -- ingest -----------------------------------------------------------------------------------------

    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult:
        payloads: list[str | bytes] = []
        index: dict[int, int] = {}
        rows: list[object] = []
        for job in jobs:
            at = index.get(id(job.payload))
            if at is None:
                payloads.append(_utf8(job.payload))
                at = index[id(job.payload)] = len(payloads)
            due = "" if job.due_at is None else repr(job.due_at)
            rows += [job.target_key, job.target_spec, at, job.dead_reason or "", job.traceparent or "", due]
        first = await self._accepts.accept(
            [receiver, dedup_key or "", dedup_window, repr(now), len(payloads), *payloads, len(jobs), *rows],
            "\n".join(dict.fromkeys(job.target_key for job in jobs if job.dead_reason is None)),
            # Checked, so safe to try again: had the first attempt been stored, its dedup key makes
            # the second a duplicate (answered 2xx, stored once).
            retry=bool(dedup_key) and dedup_window > 0,
        )  # with min_replicas, on that many replicas too (the batch's WAIT)
        if int(first) == -1:
            return AcceptResult(None, duplicate=True)
        return AcceptResult(int(first) or None, duplicate=False)

    async def check_writable(self, now: float) -> str | None:
        async def write() -> None:
            # The WAIT in the same pipeline as the test write: WAIT counts the replicas that have its own
            # connection's writes, so on another connection from the pool it says nothing of this one.
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._scripts["PROBE"](keys=[], args=[self.prefix, repr(now)], client=pipe)
                if self.min_replicas:
                    pipe.wait(self.min_replicas, 1000)
                replies = await pipe.execute()
            if self.min_replicas and int(replies[1]) < self.min_replicas:
                raise OutboxUnavailable(
                    f"only {replies[1]} of {self.min_replicas} Redis replicas acknowledged"
                )

        async def probe() -> None:
            # Its success ends an outage in the log: it adds data, as an acceptance does (batch.py ends it
            # for those), so it fails whenever a webhook would (out of memory, Redis still lets DONE or
            # RELEASE through: they free memory).
            await self._call(write, retry=True, write=True)

        try:
            await asyncio.wait_for(probe(), PROBE_SECONDS)
        except TimeoutError:
            reason = (
                f"Redis did not answer a test write within {PROBE_SECONDS:g}s (stopped, frozen, overloaded"
                " or unreachable)"
            )
            self._calls.failed(reason)
            return reason
        except OutboxUnavailable as exc:
            return str(exc)
        return None

    # -- dispatch ---------------------------------------------------------------------------------------

    async def pending_targets(self) -> list[str]:
        return sorted(await self._call(lambda: self._redis.smembers(self._key("targets")), retry=True))

    async def _read(self, *which: object) -> tuple[list[Job], list[Job]]:
        """Jobs that exist, with their payloads, in one script (scripts.py's JOBS: `which` says which):
        the started ones (for "pending"), then the others in the order given or of the line."""
        started, rows, pairs = await self._run("JOBS", len(_FIELDS), *_FIELDS, *which, retry=True)
        payloads = dict(zip(pairs[::2], pairs[1::2], strict=True))

        def jobs(rows: list[list[Any]]) -> list[Job]:
            return [_job(int(row[0]), row[1:], payloads.get(row[1])) for row in rows if row[1]]

        return jobs(started), jobs(rows)

    async def _jobs(self, ids: list[int]) -> list[Job]:
        """The jobs with these ids (those that exist), with their payloads, in the order given."""
        if not ids:
            return []
        return (await self._read("ids", *ids))[1]

    async def _fields(self, ids: list[str], field: str) -> list[str | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._key("job", job_id), field)
            return list(await pipe.execute())

    async def next_due(self, target_keys: list[str]) -> dict[str, float | None]:
        # Two pipelined round trips whatever the number of keys (a fan-out to 1000 people asks for 1000
        # every round): the heads of the lines and the started jobs, then their times.
        async def read() -> dict[str, float | None]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in target_keys:
                    pipe.zrange(self._key("q", key), 0, 0)
                    pipe.smembers(self._key("started", key))
                heads = await pipe.execute()
            ids = [[*heads[2 * i], *heads[2 * i + 1]] for i in range(len(target_keys))]
            times = iter(await self._fields([job_id for each in ids for job_id in each], "next_attempt_at"))
            out: dict[str, float | None] = {}
            for key, each in zip(target_keys, ids, strict=True):
                found = [float(t) for t in (next(times) for _ in each) if t is not None]
                out[key] = min(found) if found else None
            return out

        return await self._call(read, retry=True)

    async def pending_jobs(self, target_key: str, now: float, limit: int, after_id: int = 0) -> list[Job]:
        started_jobs, line = await self._read("pending", target_key, after_id, limit)
        started = sorted(
            (j for j in started_jobs if j.state is JobState.PENDING and j.next_attempt_at <= now),
            key=lambda j: j.id,
        )
        seen = {j.id for j in started}
        out = list(started)
        for job in line:
            if job.next_attempt_at > now:
                break  # no job overtakes an earlier one that waits
            if job.id not in seen:
                out.append(job)
        return out

    async def lease(self, target_key: str, owner: str, seconds: float) -> bool:
        return bool(await self._run("LEASE", target_key, owner, max(1, int(seconds * 1000))))

    async def listen(self, on_new: Callable[[list[str]], None]) -> None:
        while not self._calls.closed:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._key("wake"))
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            on_new(str(message["data"]).split("\n"))
            except RedisError:
                await asyncio.sleep(1.0)  # Redis away: subscribe again when it is back

    async def release(self, target_key: str, owner: str) -> None:
        await self._run("RELEASE", target_key, owner)

    async def sending(
        self, job_id: int, now: float, claim: ledger.SendClaim | None = None
    ) -> ledger.WriteAhead:
        if claim is None:
            await self._run("SENDING", job_id, repr(now))
            return ledger.WRITTEN
        return ledger.write_ahead(await self._run("CLAIM", *ledger.claim_args(job_id, now, claim)))

    async def claim_send(self, now: float, claim: ledger.SendClaim) -> ledger.WriteAhead:
        return ledger.write_ahead(await self._run("CLAIM", *ledger.claim_args(None, now, claim)))

    async def sent(self, counted: tuple[str, ...], now: float) -> None:
        if counted:
            await self._run("SENT", repr(now), *counted)

    async def progress(self, job_id: int, sent_parts: int, now: float) -> None:
        await self._run("PROGRESS", job_id, sent_parts, repr(now))

    async def done(self, job_id: int, now: float) -> None:
        await self._run("DONE", job_id, repr(now))

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
        await self._run(
            "RETRY_LATER",
            job_id,
            attempts,
            repr(next_attempt_at),
            error,
            str(reason),
            repr(now),
            int(maybe_delivered),
        )

    async def dead(self, job_id: int, error: str, reason: Reason, now: float, refused: bool = False) -> None:
        await self._run("DEAD", job_id, error, str(reason), repr(now), int(refused))

    async def merge(self, jobs: list[Job], payload: str, digest_of: int, now: float) -> Job:
        digest = await self._run("MERGE", payload, digest_of, repr(now), *[j.id for j in jobs])
        found = await self._jobs([int(digest)])
        return found[0]

    async def record_send(self, rate_keys: list[str], at: float) -> None:
        if rate_keys:
            await self._run("RECORD_SEND", repr(at), *rate_keys)

    async def recent_sends(self, since: float) -> list[tuple[str, float]]:
        rows = await self._call(
            lambda: self._redis.zrangebyscore(self._key("sends"), since, "+inf", withscores=True)
        )
        return [(member.split("|", 1)[1], float(score)) for member, score in rows]

    # -- operators and housekeeping ---------------------------------------------------------------------

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        key = self._key("st", state.value) if state else self._key("jobs")
        ids = await self._call(lambda: self._redis.zrevrange(key, 0, max(0, limit - 1)), retry=True)
        return await self._jobs([int(i) for i in ids])

    async def get_job(self, job_id: int) -> Job | None:
        found = await self._jobs([job_id])
        return found[0] if found else None

    async def requeue(self, job_ids: list[int] | None, now: float) -> int:
        if job_ids == []:
            return 0
        ids = [] if job_ids is None else list(dict.fromkeys(job_ids))  # none given: every dead letter
        return int(await self._run("REQUEUE", repr(now), *ids))

    async def purge(self, states: list[JobState], older_than: float, job_ids: list[int] | None = None) -> int:
        if job_ids == [] or not states:
            return 0
        return await purge_in_batches(self._run, [s.value for s in states], older_than, job_ids)

    async def forget(self, dedup_before: float, sends_before: float) -> None:
        async def drop() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(self._key("dedup"), "-inf", f"({dedup_before!r}")
                pipe.zremrangebyscore(self._key("sends"), "-inf", f"({sends_before!r}")
                await pipe.execute()

        await self._call(drop, retry=True)

    async def stats(self, now: float) -> OutboxStats:
        async def read() -> OutboxStats:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcard(self._key("st", "pending"))
                pipe.zcard(self._key("st", "dead"))
                pipe.zrange(self._key("created"), 0, 0, withscores=True)
                pending, dead, oldest = await pipe.execute()
            age = max(0.0, now - float(oldest[0][1])) if oldest else 0.0
            return OutboxStats(int(pending), int(dead), age)

        return await self._call(read, retry=True)

    async def close(self) -> None:
        if not self._calls.closed:
            self._calls.closed = True
            await self._accepts.close()
            await self._redis.aclose(close_connection_pool=True)
