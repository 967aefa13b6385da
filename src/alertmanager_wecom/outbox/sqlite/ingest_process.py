"""Webhook commits in a child process: the group commit without the GIL.

A writer thread in the relay's process cannot take the GIL while the event loop works through a wave of
requests (the loop takes it back after every socket call), so it started each commit only when the whole
wave had been handled, and the loop then sat idle waiting for it: requests moved in lock-step with the
fsyncs. A child process commits as soon as a notification arrives, while the loop goes on with the next
requests; notifications that arrive during a commit share the next one.

The relay sends each notification's rows through the child's stdin and answers the webhook when the
child reports the commit on its stdout. Frames are a 4-byte length and a pickle; both ends are this
module. The child exits when its stdin closes, so it never outlives the relay (kill -9 included).
Everything else — dispatch, operators' changes, reads — stays with the relay's own connections; SQLite
serialises the two writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alertmanager_wecom.outbox.base import AcceptResult, NewJob, OutboxUnavailable
from alertmanager_wecom.outbox.sqlite import ingest_child
from alertmanager_wecom.outbox.sqlite.accept import JobRow, job_rows
from alertmanager_wecom.outbox.sqlite.ingest_child import HEADER, Reply, Request

log = logging.getLogger(__name__)


class _Child:
    """One child process and the requests it was sent: if it dies, exactly these are answered 503."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.outgoing: list[Request] = []
        self.reader: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process.returncode is None and not (self.reader is not None and self.reader.done())

    def fail(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(OutboxUnavailable(reason))


class IngestProcess:
    """The relay's end: `accept` sends a notification to the child and waits for its commit."""

    def __init__(
        self,
        path: Path,
        synchronous: str,
        max_size_mb: int | None,
        on_exit: Callable[[], object] | None = None,
    ) -> None:
        self._args = [str(path), synchronous, str(max_size_mb or 0)]
        self._on_exit = on_exit  # called when a child exits that was not told to (a metric counts it)
        self._child: _Child | None = None
        self._starting: asyncio.Task[_Child] | None = None
        self._next_id = 0
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id; None before the first webhook started it."""
        return self._child.process.pid if self._child is not None else None

    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult:
        notification_id, duplicate = await self._request(
            receiver, job_rows(jobs), dedup_key, dedup_window, now
        )
        return AcceptResult(notification_id, duplicate=duplicate)

    async def probe(self, now: float, check_pages: bool = False) -> int:
        """A small write through the child, as a webhook's (`accept.probe`; `check_pages`: with
        quick_check): the bytes the outbox can still grow by; raises OutboxUnavailable with the reason
        when it cannot write."""
        return int(await self._request(None, [], None, 0.0, now, check_pages))

    async def _request(
        self,
        receiver: str | None,
        rows: list[JobRow],
        dedup_key: str | None,
        dedup_window: float,
        now: float,
        check_pages: bool = False,
    ) -> Any:
        if self._closed:
            raise OutboxUnavailable("outbox is closed")
        child = await self._ensure_started()
        loop = asyncio.get_running_loop()
        self._next_id += 1
        future: asyncio.Future[Any] = loop.create_future()
        child.pending[self._next_id] = future
        if not child.outgoing:
            # One frame for everything accepted in this turn of the event loop.
            loop.call_soon(self._flush, child)
        child.outgoing.append((self._next_id, receiver, rows, dedup_key, dedup_window, now, check_pages))
        return await future

    @staticmethod
    def _flush(child: _Child) -> None:
        requests, child.outgoing = child.outgoing, []
        stdin = child.process.stdin
        if stdin is None or stdin.is_closing():
            child.fail("the ingest writer has exited")
            return
        blob = pickle.dumps(requests, protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(HEADER.pack(len(blob)))
        stdin.write(blob)  # not joined to its header: a large webhook's blob is megabytes

    async def _ensure_started(self) -> _Child:
        if self._child is not None and self._child.running:
            return self._child
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        try:
            return await asyncio.shield(self._starting)
        except OSError as exc:
            raise OutboxUnavailable(f"cannot start the ingest writer: {exc}") from exc

    async def _start(self) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            ingest_child.__name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = self._child = _Child(process)
        child.reader = asyncio.get_running_loop().create_task(self._read_replies(child))
        return child

    async def _read_replies(self, child: _Child) -> None:
        stdout = child.process.stdout
        assert stdout is not None
        try:
            while True:
                size = HEADER.unpack(await stdout.readexactly(HEADER.size))[0]
                replies: list[Reply] = pickle.loads(await stdout.readexactly(size))  # noqa: S301 - our own child
                for request_id, ok, value in replies:
                    future = child.pending.pop(request_id, None)
                    if future is None or future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(OutboxUnavailable(f"outbox: {value}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await child.process.wait()
        if not self._closed and self._on_exit is not None:
            self._on_exit()
        if child.pending:
            # What it had not confirmed is answered 503: Alertmanager sends it again, and the dedup key
            # of anything that was in fact committed makes the second copy a duplicate.
            log.error("the ingest writer exited (code %s); it is started again on the next webhook", code)
            child.fail(f"the ingest writer exited (code {code})")

    async def close(self) -> None:
        self._closed = True
        child = self._child
        if child is None:
            return
        if child.process.stdin is not None:
            child.process.stdin.close()
        try:
            await asyncio.wait_for(child.process.wait(), 30)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()
        if child.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await child.reader
