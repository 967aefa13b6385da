"""The ingest writer child (see `ingest_process`): reads notifications on stdin, commits, answers on stdout.

It imports the standard library and the outbox's schema only: it starts quickly and stays small.
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
from alertmanager_wecom.outbox.schema import JobRow, connect_writer, insert_notification, run_isolated

HEADER = struct.Struct("!I")  # each frame: its length, then a pickle
# A request: id, receiver, jobs, dedup key, dedup window, now.
Request = tuple[int, str, list[JobRow], str | None, float, float]
# A reply: id, ok, then (notification_id, duplicate) or the error's text.
Reply = tuple[int, bool, Any]


def _insert(request: Request) -> Callable[[sqlite3.Connection], AcceptResult]:
    _request_id, receiver, jobs, dedup_key, dedup_window, now = request
    return lambda conn: insert_notification(conn, receiver, jobs, dedup_key, dedup_window, now)


def _commit(conn: sqlite3.Connection, requests: list[Request]) -> list[Reply]:
    results = run_isolated(conn, "BEGIN IMMEDIATE", [_insert(request) for request in requests])
    return [
        (request[0], True, (result.notification_id, result.duplicate))
        if isinstance(result, AcceptResult)
        else (request[0], False, str(result))
        for request, result in zip(requests, results, strict=True)
    ]


def main() -> None:
    # Stopping is the relay's business: it closes our stdin once its last webhook is answered. A
    # SIGTERM, Ctrl-C or hang-up sent to the whole process group must not kill commits the relay waits for.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    path, synchronous, max_size_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = connect_writer(path, synchronous, max_size_mb or None)
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
            blob = pickle.dumps(_commit(conn, requests), protocol=pickle.HIGHEST_PROTOCOL)
            out = memoryview(HEADER.pack(len(blob)) + blob)
            while out:
                out = out[os.write(1, out) :]
    conn.close()


if __name__ == "__main__":
    main()
