"""Group commit for the Redis outbox's acceptances: the webhooks that arrive while one batch is on its
way to Redis go together in the next, as one pipeline.

With ``appendfsync always`` Redis fsyncs once per turn of its event loop, before it answers what that
turn ran; a webhook waits for that fsync. Sent one script per round trip, the webhooks in flight reach
Redis spread over many turns and each pays a whole fsync; sent as one pipeline, they land in one turn
and share it (as SQLite's ingest child shares one commit). Each ACCEPT is still its own atomic script:
one refused (out of memory) fails alone. The wake-up for the other replicas rides in the same pipeline.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.exceptions import NoScriptError

from alertmanager_wecom.outbox.base import OutboxUnavailable
from alertmanager_wecom.outbox.redis.calls import RedisCalls, reason_of

# One acceptance: the script's arguments (after the key count), the wake-up message ('' none), whether
# it may run twice (calls.py), and who waits for its result.
_Item = tuple[list[object], str, bool, "asyncio.Future[Any]"]


class AcceptBatches:
    def __init__(self, calls: RedisCalls, script: Any, wake_channel: str) -> None:
        self._calls = calls
        self._script = script  # the registered ACCEPT script (its sha, and loading it again)
        self._channel = wake_channel
        self._waiting: list[_Item] = []
        self._sender: asyncio.Task[None] | None = None

    async def accept(self, args: list[object], wake: str, retry: bool) -> Any:
        """ACCEPT's result for `args`, stored together with whatever else is waiting."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, wake, retry, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all(), name="redis-accept-batches")
        return await future

    async def _send_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._calls(
                    functools.partial(self._send, batch), retry=all(i[2] for i in batch)
                )
            except OutboxUnavailable as exc:  # the whole batch: the connection, or the time bound
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(OutboxUnavailable(str(exc), logged=True))
                continue
            refused = None
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    refused = reason_of(result, self._calls.timeout)
                    future.set_exception(OutboxUnavailable(refused, logged=True))
                else:
                    future.set_result(result)
            if refused is None:
                self._calls.outage.succeeded()
            else:
                self._calls.outage.failed(refused)

    async def _send(self, batch: list[_Item]) -> list[Any]:
        """Each item's result or error; the scripts Redis does not know (restarted) loaded and run again
        (NOSCRIPT: not run)."""
        results = await self._pipeline(batch)
        again = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if again:
            await self._calls.redis.script_load(self._script.script)
            for i, result in zip(again, await self._pipeline([batch[i] for i in again]), strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[_Item]) -> list[Any]:
        async with self._calls.redis.pipeline(transaction=False) as pipe:
            for args, wake, _retry, _future in batch:
                pipe.evalsha(self._script.sha, 0, *args)
                if wake:
                    pipe.publish(self._channel, wake)
            replies = await pipe.execute(raise_on_error=False)
        results, at = [], 0
        for _args, wake, _retry, _future in batch:
            results.append(replies[at])
            at += 2 if wake else 1
        # A failed wake-up (its reply, skipped here) is no failure: a replica that misses it finds the
        # targets on its next round. One for a duplicate is a round that finds nothing new.
        return results
