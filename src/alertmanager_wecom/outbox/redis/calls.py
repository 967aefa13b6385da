"""How the Redis outbox talks to Redis: one bounded pool, each call bounded in time as a whole, a broken
connection tried again once where that is safe, and every failure turned into `OutboxUnavailable`.

- **Bounded in time** (`storage.timeout`): waiting for a free connection, connecting, and every answer
  of one call, all together. A frozen Redis (SIGSTOP, a stalled disk under ``appendfsync always``)
  accepts connections and answers nothing: without a bound of its own a webhook would wait for the
  socket timeout of each round trip, and Alertmanager's own timeout would fire first. After the bound,
  the call's connection is closed (redis-py does that when a call is cancelled), so nothing is read
  from it later by mistake.
- **Tried again once** on a broken connection (`ConnectionError`: Redis restarted, a reset, a pooled
  connection Redis closed while idle), at once, within the same bound, and only for calls whose effect
  is the same whether they ran once or twice: reads, and scripts that set values rather than add them or
  whose effect is checked (an acceptance under a dedup key: if the first attempt was stored after all,
  the second is answered as its duplicate). Never on a timeout: the command may still be running on a
  frozen Redis, and a second one would wait just as long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from alertmanager_wecom.outbox.base import OutboxUnavailable
from alertmanager_wecom.repeated import Repeated

T = TypeVar("T")
# The pool waits for a free connection rather than opening one per call: a burst of webhooks queues
# for a moment instead of failing. 64 is well above what one replica keeps busy.
MAX_CONNECTIONS = 64


def open_redis(url: str, timeout: float, password: str | None) -> Any:
    """A client on a bounded pool; every socket operation bounded by `timeout` too (the calls' own
    bound is in `RedisCalls`; this one covers what runs outside a call, e.g. closing)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **({"password": password} if password else {}),
    )
    # Any: redis-py types its replies as bytes | str | …; with decode_responses they are str.
    return aioredis.Redis(connection_pool=pool)


async def durability_warning(client: Any) -> str | None:
    """Why an acknowledged notification could still be lost (None: appendfsync always)."""
    try:
        config = await client.config_get("appendonly")
        config.update(await client.config_get("appendfsync"))
    except RedisError:
        return "cannot read Redis's persistence settings (CONFIG GET not allowed?): make sure of appendfsync always"
    if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
        return (
            f"Redis has appendonly {config.get('appendonly')}, appendfsync {config.get('appendfsync')}: a notification"
            " answered 2xx can be lost if Redis dies; set appendonly yes and appendfsync always"
        )
    return None


def reason_of(exc: BaseException, timeout: float) -> str:
    """What an operator reads in /readyz, the 503 and the log: what is wrong and, where known, the fix."""
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, (TimeoutError, RedisTimeoutError)):
        return (
            f"Redis did not answer within storage.timeout ({timeout:g}s): frozen, overloaded or unreachable"
        )
    if isinstance(exc, OutOfMemoryError):
        return (
            "Redis is out of memory (maxmemory reached, policy noeviction): raise maxmemory or free memory;"
            f" nothing accepted is lost ({text})"
        )
    if isinstance(exc, ReadOnlyError):
        return f"Redis is read-only (a replica, or a failed disk write): {text}"
    return f"Redis: {type(exc).__name__}: {text}"


class RedisCalls:
    """Runs the outbox's calls on one client; logs an outage once a minute (`Repeated`)."""

    def __init__(self, client: Any, timeout: float, log: logging.Logger) -> None:
        self.redis = client
        self.timeout = timeout
        self.outage = Repeated(log, "Redis")
        self.closed = False

    async def __call__(self, work: Callable[[], Awaitable[T]], retry: bool = False, write: bool = False) -> T:
        """`work`'s result. `retry`: `work` may run twice with the effect of once (see the module).
        `write`: a success ends an outage in the log; others do not (out of memory, or read-only, Redis
        still answers reads and lets deletes through: the log would say "available again" between
        every two refusals)."""
        if self.closed:
            raise OutboxUnavailable("the outbox is closed")
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    result = await work()
                except RedisConnectionError as exc:
                    # "No connection available" is the pool's own wait running out: Redis is slow, not
                    # gone, and another wait would only double the answer's delay.
                    if not retry or "No connection available" in str(exc):
                        raise
                    result = await work()  # the failed connection was closed: this one is new
        except (RedisError, TimeoutError) as exc:
            reason = reason_of(exc, self.timeout)
            self.outage.failed(reason)
            raise OutboxUnavailable(reason, logged=True) from None
        if write:
            self.outage.succeeded()
        return result

    def failed(self, reason: str) -> None:
        """An outage seen outside a call (the readiness probe's own bound)."""
        self.outage.failed(reason)
