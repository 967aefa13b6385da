"""The durable outbox: the source of truth between the webhook and WeCom.

The webhook answers 2xx only after `Outbox.accept` has committed; the dispatcher takes jobs (one per
notification and target) from here and records progress message by message, so that a crash at any
point loses nothing and repeats at most the one message that was in flight.  `Outbox` is the small
interface a backend implements (SQLite today; Redis for replicas later).
"""

from typing import TYPE_CHECKING

from alertmanager_wecom.outbox.base import (
    AcceptResult,
    Job,
    JobState,
    LeaseLost,
    NewJob,
    Outbox,
    OutboxStats,
    OutboxUnavailable,
    SendClaim,
    WriteAhead,
)

if TYPE_CHECKING:
    from alertmanager_wecom.outbox.sqlite.store import SQLiteOutbox


def __getattr__(name: str) -> object:
    # Imported on first use: the ingest child imports this package and needs none of it (nor asyncio).
    if name == "SQLiteOutbox":
        from alertmanager_wecom.outbox.sqlite.store import SQLiteOutbox

        return SQLiteOutbox
    raise AttributeError(name)


__all__ = [
    "AcceptResult",
    "Job",
    "JobState",
    "LeaseLost",
    "NewJob",
    "Outbox",
    "OutboxStats",
    "OutboxUnavailable",
    "SQLiteOutbox",
    "SendClaim",
    "WriteAhead",
]
