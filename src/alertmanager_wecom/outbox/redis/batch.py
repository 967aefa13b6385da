"""Group commit for the Redis outbox's acceptances: the webhooks that arrive while a batch is on its
way to Redis go together in the next (two on their way at most), as one script (scripts.py's ACCEPT).

With ``appendfsync always`` Redis fsyncs once per turn of its event loop, before it answers what that
turn ran; a webhook waits for that fsync. Sent one script per round trip, the webhooks in flight reach
Redis spread over many turns and each pays a whole fsync; sent together, they land in one turn and share
it (as SQLite's ingest child shares one commit). One script for the batch rather than a pipeline of one
per acceptance: the relay's event loop is what limits ingest on Redis, and each command costs it a
packing, a reply to parse and a result to route, whatever its size; so does each wake-up message, which
is now one for the batch (sent by the script) instead of one per acceptance, and heard once by every
replica's listener, this one's too. Each acceptance is still all or nothing and fails alone (see the
script). With `min_replicas`, the WAIT follows the script in the same round trip, on the same connection:
WAIT counts the replicas that have this connection's writes, so on another connection it would not
cover them.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import hiredis
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError, ResponseError

from alertmanager_wecom.outbox.base import OutboxUnavailable
from alertmanager_wecom.outbox.redis.calls import RedisCalls, reason_of

# One acceptance: the script's arguments for it (after the prefix), the wake-up message ('' none),
# whether it may run twice (calls.py), and who waits for its result.
_Item = tuple[list[object], str, bool, "asyncio.Future[Any]"]
# Acceptances per script at most: Redis runs nothing else while a script runs (some 50-80 µs each
# here); those beyond go in the next batch.
MAX_BATCH = 200
# Batches on their way at once. With one, the webhooks that arrive while it waits for Redis's fsync
# wait for all of it before theirs is even sent, and the event loop idles once it has read them all; a
# second lets them go meanwhile (Redis runs the scripts one after the other all the same).
IN_FLIGHT = 2


def _error(text: str) -> ResponseError:
    """Redis's error for one acceptance of a batch (the script returns its text), as redis-py raises it."""
    if text.startswith("OOM"):
        return OutOfMemoryError(text)
    if text.startswith("READONLY"):
        return ReadOnlyError(text)
    return ResponseError(text)


def _pack(args: list[object]) -> bytes:
    """One command in Redis's protocol, packed in C; str is sent as UTF-8, int and float as their repr."""
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]  # its stub: a tuple of one
    return packed


class AcceptBatches:
    def __init__(
        self, calls: RedisCalls, script: Any, prefix: str, wake_channel: str, min_replicas: int = 0
    ) -> None:
        self._calls = calls
        self._script = script  # the registered ACCEPT script (its sha, and loading it again)
        self._head = [prefix, wake_channel]
        self._min_replicas = min_replicas
        self._waiting: list[_Item] = []
        # The batches' own connections (one per batch on its way), not the pool's: its checkout and
        # redis-py's pipeline cost the event loop more than the batch's packing (packed once by hiredis,
        # from the arguments as they are: str, bytes, int, float).
        self._connections: list[Any] = []
        self._idle: list[Any] = []
        self._senders: set[asyncio.Task[None]] = set()

    def accept(self, args: list[object], wake: str, retry: bool) -> asyncio.Future[Any]:
        """ACCEPT's result for `args`, stored together with whatever else is waiting (a future, not a
        coroutine: one frame less to resume on every webhook's way back)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, wake, retry, future))
        if len(self._senders) < IN_FLIGHT:
            self._senders.add(asyncio.create_task(self._send_all(), name="redis-accept-batches"))
        return future

    async def _send_all(self) -> None:
        try:
            await self._send_waiting()
        finally:
            # Here, with no await since the last look at `_waiting`: a done-callback would run a turn
            # later, and an acceptance in between would see no free sender and wait for the next one.
            self._senders.discard(asyncio.current_task())

    async def _send_waiting(self) -> None:
        # The webhooks being read in this turn of the event loop join this batch.
        await asyncio.sleep(0)
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
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
                if isinstance(result, OutboxUnavailable):  # stored, but not on enough replicas
                    future.set_exception(result)
                elif isinstance(result, Exception):
                    refused = reason_of(result, self._calls.timeout)
                    future.set_exception(OutboxUnavailable(refused, logged=True))
                else:
                    future.set_result(result)
            if refused is None:
                self._calls.outage.succeeded()
            else:
                self._calls.outage.failed(refused)

    async def _send(self, batch: list[_Item]) -> list[Any]:
        """Each item's result or error; a batch Redis does not know the script of (restarted) loaded and
        run again (NOSCRIPT: not run)."""
        results = await self._pipeline(batch)
        if results and isinstance(results[0], NoScriptError):
            await self._calls.redis.script_load(self._script.script)
            results = await self._pipeline(batch)
        return results

    async def _pipeline(self, batch: list[_Item]) -> list[Any]:
        """The batch's script (and WAIT) in one round trip: each item's result or error."""
        args: list[object] = ["EVALSHA", self._script.sha, 0, *self._head]
        for item_args, wake, _retry, _future in batch:
            args += [wake, len(item_args), *item_args]
        commands = [_pack(args)]
        if self._min_replicas:
            commands.append(_pack(["WAIT", self._min_replicas, 1000]))
        replies = await self._exchange(commands)
        reply = replies[0]
        if isinstance(reply, Exception):  # the whole script: NOSCRIPT, BUSY, …
            return [reply] * len(batch)
        results: list[Any] = [_error(r) if isinstance(r, str) else r for r in reply]
        if self._min_replicas:
            got = replies[1]
            if isinstance(got, Exception):
                return [got] * len(batch)
            if int(got) < self._min_replicas:
                short = f"only {got} of {self._min_replicas} Redis replicas acknowledged"
                results = [OutboxUnavailable(short) if isinstance(r, int) else r for r in results]
        return results

    async def _exchange(self, commands: list[bytes]) -> list[Any]:
        """`commands` (packed) on the batches' own connection, and their replies; an error reply is
        returned, not raised. Anything else that goes wrong (a broken connection, the call's time bound
        running out mid-way) closes the connection: what it would answer later belongs to no one."""
        pool = self._calls.redis.connection_pool
        if self._idle:
            connection = self._idle.pop()
        else:
            connection = pool.connection_class(**pool.connection_kwargs)
            self._connections.append(connection)
        try:
            # As the pool does for its own: connected, and a connection Redis closed while it was idle
            # (a restart, its `timeout`) opened again rather than failing this batch.
            await pool.ensure_connection(connection)
            await connection.send_packed_command(commands, check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            self._idle.append(connection)  # if closed, it connects again when next used
        return replies

    async def close(self) -> None:
        for connection in self._connections:
            await connection.disconnect()
