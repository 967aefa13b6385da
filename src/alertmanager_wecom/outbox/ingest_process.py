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
import os
import pickle
import signal
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any

from alertmanager_wecom.outbox.base import AcceptResult, NewJob, OutboxUnavailable
from alertmanager_wecom.outbox.schema import JobRow, connect_writer, insert_notification, job_rows

log = logging.getLogger("alertmanager_wecom.outbox")
_HEADER = struct.Struct("!I")

Request = tuple[
    int, str, list[JobRow], str | None, float, float
]  # id, receiver, jobs, dedup key, window, now
Reply = tuple[int, bool, Any]  # id, ok, (notification_id, duplicate) or the error's text


class IngestProcess:
    """The relay's end: `accept` sends a notification to the child and waits for its commit."""

    def __init__(self, path: Path, synchronous: str, max_size_mb: int | None) -> None:
        self._args = [str(path), synchronous, str(max_size_mb or 0)]
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[asyncio.subprocess.Process] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[AcceptResult]] = {}
        self._outgoing: list[Request] = []
        self._next_id = 0
        self._closed = False

    async def accept(
        self, receiver: str, jobs: list[NewJob], dedup_key: str | None, dedup_window: float, now: float
    ) -> AcceptResult:
        if self._closed:
            raise OutboxUnavailable("outbox is closed")
        process = await self._ensure_started()
        loop = asyncio.get_running_loop()
        self._next_id += 1
        future: asyncio.Future[AcceptResult] = loop.create_future()
        self._pending[self._next_id] = future
        if not self._outgoing:
            # One frame for everything accepted in this turn of the event loop.
            loop.call_soon(self._flush, process)
        self._outgoing.append((self._next_id, receiver, job_rows(jobs), dedup_key, dedup_window, now))
        return await future

    def _flush(self, process: asyncio.subprocess.Process) -> None:
        requests, self._outgoing = self._outgoing, []
        if process.stdin is None or process.stdin.is_closing():
            self._fail([r[0] for r in requests], "the ingest writer has exited")
            return
        blob = pickle.dumps(requests, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.write(_HEADER.pack(len(blob)) + blob)

    async def _ensure_started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        try:
            return await asyncio.shield(self._starting)
        except OSError as exc:
            raise OutboxUnavailable(f"cannot start the ingest writer: {exc}") from exc

    async def _start(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(process))
        return process

    async def _read_replies(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                size = _HEADER.unpack(await process.stdout.readexactly(_HEADER.size))[0]
                replies: list[Reply] = pickle.loads(await process.stdout.readexactly(size))  # noqa: S301 - our own child
                for request_id, ok, value in replies:
                    future = self._pending.pop(request_id, None)
                    if future is None or future.done():
                        continue
                    if ok:
                        future.set_result(AcceptResult(value[0], duplicate=value[1]))
                    else:
                        future.set_exception(OutboxUnavailable(f"outbox: {value}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await process.wait()
        if self._pending:
            # What it had not confirmed is answered 503: Alertmanager sends it again, and the dedup key
            # of anything that was in fact committed makes the second copy a duplicate.
            log.error("the ingest writer exited (code %s); it is started again on the next webhook", code)
            self._fail(list(self._pending), f"the ingest writer exited (code {code})")

    def _fail(self, request_ids: list[int], reason: str) -> None:
        for request_id in request_ids:
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_exception(OutboxUnavailable(reason))

    async def close(self) -> None:
        self._closed = True
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# -- the child ------------------------------------------------------------------------------------------


def _commit(conn: sqlite3.Connection, requests: list[Request]) -> list[Reply]:
    """All in one transaction; if one fails, each in its own, so that one failure undoes no other."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        results = [insert_notification(conn, *request[1:]) for request in requests]
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if len(requests) > 1:
            return [reply for request in requests for reply in _commit(conn, [request])]
        return [(requests[0][0], False, str(exc))]
    return [
        (request[0], True, (result.notification_id, result.duplicate))
        for request, result in zip(requests, results, strict=True)
    ]


def main() -> None:
    # Stopping is the relay's business: it closes our stdin once its last webhook is answered. A
    # SIGTERM or Ctrl-C sent to the whole process group must not kill commits the relay waits for.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, synchronous, max_size_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = connect_writer(path, synchronous, max_size_mb or None)
    buffer = b""
    while True:
        data = os.read(0, 1 << 20)
        if not data:  # the relay closed our stdin, or is gone
            break
        buffer += data
        requests: list[Request] = []
        while len(buffer) >= _HEADER.size:
            size = _HEADER.unpack_from(buffer)[0]
            if len(buffer) < _HEADER.size + size:
                break
            requests.extend(pickle.loads(buffer[_HEADER.size : _HEADER.size + size]))  # noqa: S301 - our parent
            buffer = buffer[_HEADER.size + size :]
        if requests:
            blob = pickle.dumps(_commit(conn, requests), protocol=pickle.HIGHEST_PROTOCOL)
            out = memoryview(_HEADER.pack(len(blob)) + blob)
            while out:
                out = out[os.write(1, out) :]
    conn.close()


if __name__ == "__main__":
    main()
