"""The SQLite outbox, the embedded default backend.

  store           `SQLiteOutbox`, the `Outbox` implementation: which connection runs what, the SQL
  writer          the threads that own the relay's connections (group commit)
  schema          tables, migrations, connections, `run_isolated`
  accept          what a webhook's commit writes, and the readiness probe
  readiness       `check_writable`'s answer: the probe, bounded and shared, and what failed writes taught
  pages           corrupt pages: quick_check at start, and after a write met them
  ingest_process  the relay's end of the child process that commits webhooks
  ingest_child    that child (`python -m alertmanager_wecom.outbox.sqlite.ingest_child`)
  preflight       `storage_problem`: can storage.path be opened, before the service starts
  files           `private_database`: the files 0600, a directory the service makes 0700

The ingest child imports this package: nothing here is imported eagerly (nor asyncio), so it starts
quickly and stays small.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alertmanager_wecom.outbox.sqlite.preflight import storage_problem
    from alertmanager_wecom.outbox.sqlite.store import SQLiteOutbox


def __getattr__(name: str) -> object:
    if name == "SQLiteOutbox":
        from alertmanager_wecom.outbox.sqlite.store import SQLiteOutbox

        return SQLiteOutbox
    if name == "storage_problem":
        from alertmanager_wecom.outbox.sqlite.preflight import storage_problem

        return storage_problem
    raise AttributeError(name)


__all__ = ["SQLiteOutbox", "storage_problem"]
