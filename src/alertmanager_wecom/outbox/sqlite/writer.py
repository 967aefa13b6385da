"""The threads that own the relay's SQLite connections: the dispatcher's and operators' writes on one,
reads on another, each a batch of queued operations per transaction (group commit)."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.outbox.base import OutboxUnavailable
from alertmanager_wecom.outbox.sqlite.schema import run_isolated

_BATCH = 512  # operations per transaction at most: a bound on one commit's latency


def _settle_all(settled: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, result in settled:
        if future.cancelled():
            continue
        if isinstance(result, sqlite3.Error):
            future.set_exception(OutboxUnavailable(f"outbox: {result}"))
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class Worker:
    """A thread that owns one connection and runs the operations queued for it, a batch per transaction.

    Operations that arrive while a transaction is in progress are run together in the next one: under
    load, many webhook requests share one commit (one fsync).
    """

    def __init__(self, conn: sqlite3.Connection, name: str, begin: str) -> None:
        self.conn = conn
        self._begin = begin
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]) -> None:
        self._queue.put((fn, future, future.get_loop()))

    def stop(self) -> None:
        self._queue.put(None)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < _BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if stop:
                break

    def _run_batch(self, batch: list[Any]) -> None:
        results = run_isolated(self.conn, self._begin, [fn for fn, _future, _loop in batch])
        # One wake-up of each event loop for the whole batch, not one per operation.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
        for (_fn, future, loop), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)
