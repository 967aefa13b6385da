"""The on-call store on Redis (the contract: store.py): the outbox's Redis and key prefix, so that every
replica sees every override, incident, acknowledgement and step taken.

Keys, under ``<prefix>:oncall:``: ``incident:<id>`` (the incident, a hash: a field absent is None),
``events:<id>`` (its timeline, a list of JSON, oldest first), ``steps:<id>`` (steps taken: a hash of
``round:step`` to the job that took it), ``open:<receiver>:<group_id>`` and
``latest:<receiver>:<group_id>`` (the group's open and latest incident's id); sorted sets ``incidents``,
``incidents:open`` (ids by start) and ``incidents:resolved`` (ids by end); ``overrides`` (a hash of JSON
by id) and ``overrides:end`` (ids by end). Groups are named by `group_id`, never by their key (alert
data, unbounded). Each step that must not interleave with another replica's is one command, one MULTI
or one script; times are written by Python (``repr``), never by Lua (it would write 14 digits of a time).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from alertmanager_wecom.oncall.store import (
    MOST_EVENTS,
    Incident,
    IncidentEvent,
    OncallStore,
    Override,
    group_id,
)
from alertmanager_wecom.outbox.redis.calls import open_redis

# Appends an event to a timeline, then drops the oldest past the cap but "opened" (the list's head).
_APPEND = """
local function append(events, event, most)
  redis.call('RPUSH', events, event)
  local n = redis.call('LLEN', events)
  if n > most then
    local head = redis.call('LINDEX', events, 0)
    if cjson.decode(head)['kind'] == 'opened' then
      redis.call('LTRIM', events, n - most + 1, -1)
      redis.call('LPUSH', events, head)
    else
      redis.call('LTRIM', events, n - most, -1)
    end
  end
end
"""
# The group's open incident, or this new one: one step, so that two replicas open one.
_OPEN = (
    _APPEND
    + """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
append(KEYS[4], ARGV[3], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
return {ARGV[1], 1}
"""
)
_ADD_EVENT = (
    _APPEND
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
append(KEYS[2], ARGV[1], tonumber(ARGV[2]))
return 1
"""
)
_ACKNOWLEDGE = (
    _APPEND
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'acknowledged_at') == 1 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'resolved_at') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'acknowledged_by', ARGV[1], 'acknowledged_how', ARGV[2],
           'acknowledged_at', ARGV[3])
append(KEYS[2], ARGV[4], tonumber(ARGV[5]))
return 1
"""
)
# The first silence of an open incident is when escalation stopped; every one is in the timeline.
_SILENCED = (
    _APPEND
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'silenced_at') == 0
   and redis.call('HEXISTS', KEYS[1], 'resolved_at') == 0 then
  redis.call('HSET', KEYS[1], 'silenced_at', ARGV[1])
end
append(KEYS[2], ARGV[2], tonumber(ARGV[3]))
return 1
"""
)
# Ends the incident if it is still the group's open one (the caller read its id just before).
_RESOLVE = (
    _APPEND
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'resolved_at', ARGV[2])
append(KEYS[3], ARGV[3], tonumber(ARGV[4]))
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return 1
"""
)
# A step is its first taker's, and again that taker's (the same job asking after a restart). A purged
# incident's steps are never taken (there is nothing left to escalate), nor its fields set.
_TAKE_STEP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 1 end
return 0
"""
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_PURGE_OVERRIDES = """
local ended = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ended) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #ended
"""


def _event(event: IncidentEvent) -> str:
    # "kind" is what the cap reads; times are written here, exactly.
    return json.dumps(dataclasses.asdict(event), ensure_ascii=False)


def _decode(fields: dict[str, str], events: list[str]) -> Incident | None:
    if not fields:
        return None

    def optional(name: str) -> float | None:
        return float(fields[name]) if name in fields else None

    return Incident(
        id=fields["id"],
        receiver=fields["receiver"],
        group_key=fields["group_key"],
        group_id=fields["group_id"],
        title=fields["title"],
        policy=fields.get("policy"),
        started_at=float(fields["started_at"]),
        scheduled=fields.get("scheduled") == "1",
        acknowledged_by=fields.get("acknowledged_by"),
        acknowledged_at=optional("acknowledged_at"),
        acknowledged_how=fields.get("acknowledged_how"),
        silenced_at=optional("silenced_at"),
        resolved_at=optional("resolved_at"),
        events=[IncidentEvent(**json.loads(e)) for e in events],
    )


class RedisOncallStore(OncallStore):
    def __init__(self, url: str, key_prefix: str, password: str | None = None, timeout: float = 5.0) -> None:
        self.prefix = f"{key_prefix}:oncall"
        # The outbox's client factory: a bounded pool, every socket operation bounded by `timeout`.
        self._redis: Any = open_redis(url, timeout, password)
        self._open = self._redis.register_script(_OPEN)
        self._add_event = self._redis.register_script(_ADD_EVENT)
        self._acknowledge = self._redis.register_script(_ACKNOWLEDGE)
        self._silenced = self._redis.register_script(_SILENCED)
        self._resolve = self._redis.register_script(_RESOLVE)
        self._take_step = self._redis.register_script(_TAKE_STEP)
        self._set_if_exists = self._redis.register_script(_SET_IF_EXISTS)
        self._delete_if = self._redis.register_script(_DELETE_IF)
        self._purge_overrides = self._redis.register_script(_PURGE_OVERRIDES)

    def _key(self, *parts: str) -> str:
        return ":".join([self.prefix, *parts])

    def _timeline(self, incident_id: str) -> list[str]:
        """The incident's hash and its events: the keys of every script that appends."""
        return [self._key("incident", incident_id), self._key("events", incident_id)]

    # -- overrides ------------------------------------------------------------------------------------

    async def add_override(self, override: Override) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("overrides"), override.id, json.dumps(dataclasses.asdict(override)))
            pipe.zadd(self._key("overrides:end"), {override.id: override.end})
            await pipe.execute()

    async def remove_override(self, override_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key("overrides"), override_id)
            pipe.zrem(self._key("overrides:end"), override_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def overrides(self, schedule: str | None, start: float, end: float) -> list[Override]:
        # Those ending after `start` (few: ended ones are purged), then those starting before `end`.
        ids = await self._redis.zrangebyscore(self._key("overrides:end"), f"({start!r}", "+inf")
        if not ids:
            return []
        stored = await self._redis.hmget(self._key("overrides"), ids)
        found = [Override(**json.loads(s)) for s in stored if s is not None]
        overlapping = [o for o in found if o.start < end and o.end > start]
        return sorted(
            (o for o in overlapping if schedule is None or o.schedule == schedule),
            key=lambda o: (o.start, o.id),
        )

    # -- incidents ------------------------------------------------------------------------------------

    async def _load(self, incident_ids: list[str]) -> list[Incident]:
        if not incident_ids:
            return []
        # One transaction: each incident's events as of the same moment as the incident.
        async with self._redis.pipeline(transaction=True) as pipe:
            for incident_id in incident_ids:
                pipe.hgetall(self._key("incident", incident_id))
                pipe.lrange(self._key("events", incident_id), 0, -1)
            stored = await pipe.execute()
        pairs = zip(stored[::2], stored[1::2], strict=True)
        return [incident for fields, events in pairs if (incident := _decode(fields, events)) is not None]

    async def incident(self, incident_id: str) -> Incident | None:
        found = await self._load([incident_id])
        return found[0] if found else None

    async def open_incident(
        self, receiver: str, group_key: str, title: str, policy: str | None, at: float
    ) -> tuple[Incident, bool]:
        gid = group_id(group_key)
        new_id = uuid.uuid4().hex
        fields = {
            "id": new_id,
            "receiver": receiver,
            "group_key": group_key,
            "group_id": gid,
            "title": title,
            "started_at": repr(at),
            "scheduled": "0",
        }
        if policy is not None:
            fields["policy"] = policy
        keys = [
            self._key("open", receiver, gid),
            self._key("latest", receiver, gid),
            *self._timeline(new_id),
            self._key("incidents"),
            self._key("incidents:open"),
        ]
        opened = _event(IncidentEvent(at=at, kind="opened"))
        args: list[str | int] = [
            new_id,
            repr(at),
            opened,
            MOST_EVENTS,
            *(x for kv in fields.items() for x in kv),
        ]
        incident_id, made = await self._open(keys=keys, args=args)
        found = await self.incident(str(incident_id))
        assert found is not None  # open incidents are never purged
        return found, bool(made)

    async def mark_scheduled(self, incident_id: str) -> None:
        await self._set_if_exists(keys=[self._key("incident", incident_id)], args=["scheduled", "1"])

    async def current(self, receiver: str, group_id: str) -> Incident | None:
        for which in ("open", "latest"):
            incident_id = await self._redis.get(self._key(which, receiver, group_id))
            if incident_id is not None and (found := await self.incident(incident_id)) is not None:
                return found
        return None

    async def incidents(self, limit: int = 100, open_only: bool = False, offset: int = 0) -> list[Incident]:
        # By start, then by id (Redis orders equal scores by member), as SQLite does.
        if limit <= 0:
            return []
        ids = await self._redis.zrevrange(
            self._key("incidents:open" if open_only else "incidents"), offset, offset + limit - 1
        )
        return await self._load(ids)

    async def add_event(self, incident_id: str, event: IncidentEvent) -> None:
        await self._add_event(keys=self._timeline(incident_id), args=[_event(event), MOST_EVENTS])

    async def acknowledge(self, incident_id: str, user: str, how: str, at: float) -> bool:
        event = _event(IncidentEvent(at=at, kind="acknowledged", who=[user], how=how))
        taken = await self._acknowledge(
            keys=self._timeline(incident_id), args=[user, how, repr(at), event, MOST_EVENTS]
        )
        return bool(taken)

    async def silenced(self, incident_id: str, user: str, at: float, detail: str) -> None:
        event = _event(IncidentEvent(at=at, kind="silenced", who=[user], detail=detail))
        await self._silenced(keys=self._timeline(incident_id), args=[repr(at), event, MOST_EVENTS])

    async def resolve(self, receiver: str, group_id: str, at: float) -> Incident | None:
        open_key = self._key("open", receiver, group_id)
        while True:  # until the open incident read is the one ended (another replica may end it first)
            incident_id = await self._redis.get(open_key)
            if incident_id is None:
                return None
            keys = [
                open_key,
                *self._timeline(incident_id),
                self._key("incidents:open"),
                self._key("incidents:resolved"),
            ]
            event = _event(IncidentEvent(at=at, kind="resolved"))
            if await self._resolve(keys=keys, args=[incident_id, repr(at), event, MOST_EVENTS]):
                return await self.incident(incident_id)

    async def take_step(self, incident_id: str, round_: int, step: int, taker: str) -> bool:
        keys = [self._key("incident", incident_id), self._key("steps", incident_id)]
        return bool(await self._take_step(keys=keys, args=[f"{round_}:{step}", taker]))

    # -- retention and life ---------------------------------------------------------------------------

    async def purge(self, now: float, keep: float) -> int:
        before = now - keep
        gone = 0
        while True:  # in batches: Redis serves everyone else between them
            ids = await self._redis.zrangebyscore(
                self._key("incidents:resolved"), "-inf", f"({before!r}", 0, 500
            )
            if not ids:
                break
            async with self._redis.pipeline(transaction=False) as pipe:
                for incident_id in ids:
                    pipe.hmget(self._key("incident", incident_id), "receiver", "group_id")
                groups = await pipe.execute()
            async with self._redis.pipeline(transaction=True) as pipe:
                for incident_id, (receiver, gid) in zip(ids, groups, strict=True):
                    pipe.delete(*self._timeline(incident_id), self._key("steps", incident_id))
                    pipe.zrem(self._key("incidents"), incident_id)
                    pipe.zrem(self._key("incidents:resolved"), incident_id)
                    if receiver is not None and gid is not None:  # the group's latest no more
                        latest = self._key("latest", receiver, gid)
                        await self._delete_if(keys=[latest], args=[incident_id], client=pipe)
                await pipe.execute()
            gone += len(ids)
        await self._purge_overrides(
            keys=[self._key("overrides"), self._key("overrides:end")], args=[repr(before)]
        )
        return gone

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)  # open_redis: the pool is ours
