"""The ingest writer child (see `ingest_process`): reads notifications on stdin, commits, answers on stdout.

It imports the standard library, the outbox's records and `schema` and `accept` only: it starts quickly and stays small.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import struct
import sys
from collections.abc import Callable
from typing import Any

from alertmanager_wecom.outbox.base import AcceptResult
from alertmanager_wecom.outbox.sqlite.accept import JobRow, insert_notification, probe
from alertmanager_wecom.outbox.sqlite.schema import connect_writer, run_isolated

HEADER = struct.Struct("!I")  # each frame: its length, then a pickle
# A request: id, receiver, jobs, dedup key, dedup window, now, and whether to check the pages. Receiver
# None: a readiness probe.
Request = tuple[int, str | None, list[JobRow], str | None, float, float, bool]
# A reply: id, ok, then (notification_id, duplicate), or for a probe the bytes left; or the error's text.
Reply = tuple[int, bool, Any]


def _operation(request: Request, path: str, inode: int) -> Callable[[sqlite3.Connection], object]:
    _request_id, receiver, jobs, dedup_key, dedup_window, now, check_pages = request
    if receiver is None:
        return lambda conn: probe(conn, path, now, inode, check_pages)
    return lambda conn: insert_notification(conn, receiver, jobs, dedup_key, dedup_window, now)


def _commit(conn: sqlite3.Connection, inode: int, path: str, requests: list[Request]) -> list[Reply]:
    operations = [_operation(request, path, inode) for request in requests]
    results = run_isolated(conn, "BEGIN IMMEDIATE", operations)
    return [
        (request[0], True, (result.notification_id, result.duplicate))
        if isinstance(result, AcceptResult)
        else (request[0], True, result)
        if isinstance(result, int)
        else (request[0], False, str(result))
        for request, result in zip(requests, results, strict=True)
    ]


def _open(path: str, synchronous: str, max_size_mb: int) -> tuple[sqlite3.Connection, int] | str:
    """The connection and the file's inode, or why there is none: then every request is answered with
    that, and the next batch tries again (the file may be fixed meanwhile), instead of the child dying
    on a traceback."""
    try:
        conn = connect_writer(path, synchronous, max_size_mb or None)
        return conn, os.stat(path).st_ino
    except (sqlite3.Error, OSError) as exc:
        return f"cannot open the outbox {path}: {exc}"


def main() -> None:
    # Stopping is the relay's business: it closes our stdin once its last webhook is answered. A
    # SIGTERM, Ctrl-C or hang-up sent to the whole process group must not kill commits the relay waits for.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    path, synchronous, max_size_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = _open(path, synchronous, max_size_mb)
    buffer = bytearray()  # grows in place: a large webhook's frame arrives in many reads
    while True:
        data = os.read(0, 1 << 20)
        if not data:  # the relay closed our stdin, or is gone
            break
        buffer += data
        requests: list[Request] = []
        while len(buffer) >= HEADER.size:
            size = HEADER.unpack_from(buffer)[0]
            if len(buffer) < HEADER.size + size:
                break
            with memoryview(buffer) as frame:
                requests.extend(pickle.loads(frame[HEADER.size : HEADER.size + size]))  # noqa: S301 - our parent
            del buffer[: HEADER.size + size]
        if requests:
            if isinstance(conn, str):
                conn = _open(path, synchronous, max_size_mb)
            replies = (
                [(request[0], False, conn) for request in requests]
                if isinstance(conn, str)
                else _commit(*conn, path=path, requests=requests)
            )
            blob = pickle.dumps(replies, protocol=pickle.HIGHEST_PROTOCOL)
            out = memoryview(HEADER.pack(len(blob)) + blob)
            while out:
                out = out[os.write(1, out) :]
    if not isinstance(conn, str):
        conn[0].close()


if __name__ == "__main__":
    main()
