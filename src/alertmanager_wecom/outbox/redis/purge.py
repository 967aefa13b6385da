"""Purging the Redis outbox in batches: a Lua script blocks every other client while it runs, so a purge
of a large outbox (100,000 delivered jobs after a storm) is many short scripts of `BATCH` jobs each
(about 2 ms) with webhooks and the dispatchers served in between, never one script of seconds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

BATCH = 1000


async def purge_in_batches(
    run: Callable[..., Awaitable[Any]], states: list[str], older_than: float, job_ids: list[int] | None
) -> int:
    """`run("PURGE", …)` (scripts.PURGE) batch after batch; how many jobs were deleted. Each script is
    atomic, the purge as a whole is not (nor need it be: what one purge leaves, the next takes)."""
    count = 0
    if job_ids is not None:
        ids = list(dict.fromkeys(job_ids))
        for at in range(0, len(ids), BATCH):
            purged, _ = await run("PURGE", repr(older_than), "ids", *ids[at : at + BATCH], "states", *states)
            count += int(purged)
        return count
    for state in states:
        after = 0  # the state's jobs are walked in id order, from after this id
        while True:
            purged, last = await run("PURGE", repr(older_than), "all", after, BATCH, "states", state)
            count += int(purged)
            if int(last) == 0:
                break
            after = int(last)
    return count
