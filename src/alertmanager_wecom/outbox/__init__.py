"""The durable outbox: the source of truth between the webhook and WeCom.

The webhook answers 2xx only after `Outbox.accept` has committed; the dispatcher takes jobs (one per
notification and target) from here and records progress message by message, so that a crash at any
point loses nothing and repeats at most the one message that was in flight.  `Outbox` is the small
interface a backend implements (SQLite today; Redis for replicas later).
"""

from alertmanager_wecom.outbox.base import (
    AcceptResult,
    Job,
    JobState,
    NewJob,
    Outbox,
    OutboxStats,
    OutboxUnavailable,
)
from alertmanager_wecom.outbox.sqlite import SQLiteOutbox

__all__ = [
    "AcceptResult",
    "Job",
    "JobState",
    "NewJob",
    "Outbox",
    "OutboxStats",
    "OutboxUnavailable",
    "SQLiteOutbox",
]
