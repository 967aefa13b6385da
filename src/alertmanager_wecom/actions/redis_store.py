"""The card store on Redis (the contract: store.py): the outbox's Redis and key prefix, so that every
replica sees every card, code, acknowledgement, event taken and lock. WeCom calls the callback URL on
the Service, so any replica gets any click; the group's next card may be sent by another replica.

Keys, under ``<prefix>:cards:``: ``card:<task_id>`` (the record, a hash), ``codes:<task_id>`` (a sorted
set of unused codes by time) and ``used:<task_id>`` (codes spent), ``all`` (task ids by time, for the
list and the purge), ``group:<receiver>\\0<group_key>`` (the group's task ids), ``acks`` (a hash),
``seen:<event>`` (SET NX with an expiry), ``lock:<name>`` (SET NX PX), ``audit`` (a sorted set by time) and
``audit:id``. Each step that must not interleave with another replica's is one command or one script.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from alertmanager_wecom.actions.store import (
    CODE_LIFETIME,
    ActionRecord,
    CardRecord,
    CardStore,
    state_from_json,
)
from alertmanager_wecom.outbox.redis.calls import open_redis
from alertmanager_wecom.rendering.card import CardState

# Newest unused code younger than the cutoff, moved to the spent set: one step, so that two replicas
# redrawing one card at once never send the same code (WeCom refuses the second: 60140).
_TAKE_CODE = """
local found = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. ARGV[1], 'LIMIT', 0, 1)
if #found == 0 then return false end
redis.call('ZREM', KEYS[1], found[1])
redis.call('SADD', KEYS[2], found[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return found[1]
"""
# A code is added unless it was spent already (a click retried by WeCom brings its code again).
_ADD_CODE = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# The card as redrawn, only if it still exists (a purge may have taken it). Fields are set as strings:
# Lua never reads a number back (it would write 14 digits of a time).
_REDRAWN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'card', ARGV[1], 'state', ARGV[2], 'resolved', ARGV[3])
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCardStore(CardStore):
    def __init__(self, url: str, key_prefix: str, password: str | None = None, timeout: float = 5.0) -> None:
        self.prefix = f"{key_prefix}:cards"
        # The outbox's client factory: a bounded pool, every socket operation bounded by `timeout`.
        self._redis: Any = open_redis(url, timeout, password)
        self._take = self._redis.register_script(_TAKE_CODE)
        self._add = self._redis.register_script(_ADD_CODE)
        self._redraw = self._redis.register_script(_REDRAWN)
        self._unlock = self._redis.register_script(_UNLOCK)
        # Cards live this long unless purged sooner (a safety net: the maintenance round purges).
        self._card_ttl = int(CODE_LIFETIME + 90 * 86400)

    def _key(self, *parts: str) -> str:
        return ":".join([self.prefix, *parts])

    def _group(self, receiver: str, group_key: str) -> str:
        return self._key("group", f"{receiver}\0{group_key}")

    # -- cards ----------------------------------------------------------------------------------------

    @staticmethod
    def _encode(card: CardRecord) -> dict[str, str]:
        return {
            "task_id": card.task_id,
            "app": card.app,
            "receiver": card.receiver,
            "target": card.target,
            "group_key": card.group_key,
            "job_id": str(card.job_id),
            "payload": card.payload,
            "card": json.dumps(card.card, ensure_ascii=False),
            "state": json.dumps(dataclasses.asdict(card.state)),
            "resolved": str(int(card.resolved)),
            "created_at": repr(card.created_at),
        }

    @staticmethod
    def _decode(record: dict[str, str]) -> CardRecord | None:
        if not record:
            return None
        return CardRecord(
            task_id=record["task_id"],
            app=record["app"],
            receiver=record["receiver"],
            target=record["target"],
            group_key=record["group_key"],
            job_id=int(record["job_id"]),
            payload=record["payload"],
            card=json.loads(record["card"]),
            state=state_from_json(record["state"]),
            resolved=record["resolved"] == "1",
            created_at=float(record["created_at"]),
        )

    async def add_card(self, card: CardRecord) -> None:
        group = self._group(card.receiver, card.group_key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key("card", card.task_id))
            pipe.hset(self._key("card", card.task_id), mapping=self._encode(card))
            pipe.expire(self._key("card", card.task_id), self._card_ttl)
            pipe.zadd(self._key("all"), {card.task_id: card.created_at})
            pipe.zadd(group, {card.task_id: card.created_at})
            pipe.expire(group, self._card_ttl)
            await pipe.execute()

    async def card(self, task_id: str) -> CardRecord | None:
        return self._decode(await self._redis.hgetall(self._key("card", task_id)))

    async def _cards(self, task_ids: list[str]) -> list[CardRecord]:
        if not task_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self._key("card", task_id))
            stored = await pipe.execute()
        return [record for fields in stored if (record := self._decode(fields)) is not None]

    async def open_cards(self, receiver: str, group_key: str, target: str) -> list[CardRecord]:
        task_ids = await self._redis.zrange(self._group(receiver, group_key), 0, -1)
        return [c for c in await self._cards(task_ids) if c.target == target and not c.resolved]

    async def redrawn(self, task_id: str, card: dict[str, Any], state: CardState, resolved: bool) -> None:
        await self._redraw(
            keys=[self._key("card", task_id)],
            args=[
                json.dumps(card, ensure_ascii=False),
                json.dumps(dataclasses.asdict(state)),
                int(resolved),
            ],
        )

    async def list_cards(self, limit: int = 100) -> list[CardRecord]:
        task_ids = await self._redis.zrevrange(self._key("all"), 0, max(0, limit - 1))
        return await self._cards(task_ids)

    # -- response codes -------------------------------------------------------------------------------

    async def add_code(self, task_id: str, code: str, at: float) -> None:
        keys = [self._key("codes", task_id), self._key("used", task_id)]
        await self._add(keys=keys, args=[code, repr(at), int(CODE_LIFETIME) + 3600])

    async def take_code(self, task_id: str, now: float) -> str | None:
        keys = [self._key("codes", task_id), self._key("used", task_id)]
        code = await self._take(keys=keys, args=[repr(now - CODE_LIFETIME), int(CODE_LIFETIME) + 3600])
        return str(code) if code else None

    # -- acknowledgements -----------------------------------------------------------------------------

    async def ack(self, receiver: str, group_key: str, user: str, at: float) -> None:
        await self._redis.hset(self._key("acks"), f"{receiver}\0{group_key}", json.dumps([user, at]))

    async def ack_of(self, receiver: str, group_key: str) -> tuple[str, float] | None:
        stored = await self._redis.hget(self._key("acks"), f"{receiver}\0{group_key}")
        if stored is None:
            return None
        user, at = json.loads(stored)
        return str(user), float(at)

    async def clear_ack(self, receiver: str, group_key: str) -> None:
        await self._redis.hdel(self._key("acks"), f"{receiver}\0{group_key}")

    # -- callbacks and clicks -------------------------------------------------------------------------

    async def first_time(self, key: str, at: float, keep: float) -> bool:
        taken = await self._redis.set(self._key("seen", key), repr(at), nx=True, ex=max(1, int(keep)))
        return bool(taken)

    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        taken = await self._redis.set(self._key("lock", name), owner, nx=True, px=max(1, int(seconds * 1000)))
        return bool(taken)

    async def unlock(self, name: str, owner: str) -> None:
        await self._unlock(keys=[self._key("lock", name)], args=[owner])

    # -- audit ----------------------------------------------------------------------------------------

    async def record(
        self, at: float, app: str, user: str, action: str, task_id: str, outcome: str, detail: str
    ) -> None:
        entry_id = int(await self._redis.incr(self._key("audit:id")))
        entry = ActionRecord(entry_id, at, app, user, action, task_id, outcome, detail)
        await self._redis.zadd(self._key("audit"), {json.dumps(dataclasses.asdict(entry)): at})

    async def actions(self, limit: int = 100) -> list[ActionRecord]:
        # By time, then by id: entries written in the same instant stay in their order.
        entries = await self._redis.zrevrange(self._key("audit"), 0, max(0, limit - 1))
        records = [ActionRecord(**json.loads(e)) for e in entries]
        return sorted(records, key=lambda r: (r.at, r.id), reverse=True)

    # -- retention and life ---------------------------------------------------------------------------

    async def purge(self, now: float, card_keep: float, audit_keep: float) -> int:
        cards_before = now - CODE_LIFETIME - card_keep
        gone = 0
        while True:  # in batches: Redis serves everyone else between them
            task_ids = await self._redis.zrangebyscore(self._key("all"), "-inf", repr(cards_before), 0, 500)
            if not task_ids:
                break
            records = await self._cards(task_ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for task_id in task_ids:
                    pipe.delete(
                        self._key("card", task_id), self._key("codes", task_id), self._key("used", task_id)
                    )
                    pipe.zrem(self._key("all"), task_id)
                for record in records:
                    pipe.zrem(self._group(record.receiver, record.group_key), record.task_id)
                await pipe.execute()
            gone += len(task_ids)
        acks = await self._redis.hgetall(self._key("acks"))
        old = [field for field, value in acks.items() if float(json.loads(value)[1]) < cards_before]
        if old:
            await self._redis.hdel(self._key("acks"), *old)
        await self._redis.zremrangebyscore(self._key("audit"), "-inf", repr(now - audit_keep))
        return gone

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)  # open_redis: the pool is ours
