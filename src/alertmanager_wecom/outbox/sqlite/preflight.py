"""`storage_problem`: whether the outbox file can be opened, checked before the service starts (`serve`,
`check-config`), so that a bad storage.path is one line naming it, not a traceback from a thread."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from alertmanager_wecom.outbox.sqlite.files import private_directory
from alertmanager_wecom.outbox.sqlite.schema import connect_writer, create_schema


def storage_problem(path: str | Path, create: bool = True) -> str | None:
    """Why the outbox at `path` cannot be opened read-write, as one line naming storage.path and what to
    do; None when it can. With `create`, a missing directory and database are created (as `serve` does);
    without, they are only checked to be creatable (`check-config`)."""
    if str(path) == ":memory:":
        return None
    p = Path(path)
    where = f"storage.path {path}"
    user = f"the service's user (uid {os.getuid()})" if hasattr(os, "getuid") else "the service's user"
    if p.is_dir():
        return f"{where} is a directory: set storage.path to a file in it, e.g. {p / 'outbox.db'}"
    parent = p.parent
    if not parent.is_dir():
        existing = parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{where}: {existing} is a file, not a directory: fix storage.path"
        if not create:
            if not os.access(existing, os.W_OK | os.X_OK):
                return f"{where}: cannot create the directory {parent} ({existing} is not writable by {user})"
            return None
        try:
            private_directory(parent)
        except OSError as exc:
            return (
                f"{where}: cannot create the directory {parent} ({exc.strerror}): create it, writable by"
                f" {user}, or point storage.path elsewhere"
            )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"{where}: the directory {parent} is not writable by {user} (the outbox writes {p.name}, "
            f"{p.name}-wal and {p.name}-shm there): make it writable or point storage.path elsewhere"
        )
    if p.exists() and not os.access(p, os.R_OK | os.W_OK):
        return f"{where} is not readable and writable by {user}: fix its owner or mode (chown, chmod 600)"
    if not p.exists() and not create:
        return None
    try:
        if create:
            conn = connect_writer(p, "normal", None)
            try:
                create_schema(conn)
            finally:
                conn.close()
        else:
            conn = sqlite3.connect(f"file:{quote(str(p))}?mode=rw", uri=True, timeout=1)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
    except sqlite3.Error as exc:
        return (
            f"{where} cannot be opened as the outbox ({exc}): if it is not this service's SQLite outbox,"
            " move it aside (a new one is created at the next start) or point storage.path elsewhere"
        )
    return None
