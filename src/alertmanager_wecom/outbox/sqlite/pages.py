"""Corrupt pages: `PRAGMA quick_check` at start and, once a write has met them, at each readiness probe
until it passes again.

A write meets a corrupt page only when it walks through it: the readiness probe's own small write (one
row of its own table) does not, so without this the service said ready while every webhook got 503.
Standard library only: the ingest child imports it.
"""

from __future__ import annotations

import sqlite3

# SQLite's words for SQLITE_CORRUPT and SQLITE_NOTADB, as they reach the relay: the ingest child sends
# the error's text, not the exception.
CORRUPTION = ("database disk image is malformed", "file is not a database", "has corrupt pages")
_SHOWN = 3  # problems quick_check names at most: enough to tell one bad page from a ruined file


def is_corruption(text: str) -> bool:
    return any(words in text for words in CORRUPTION)


def page_problem(conn: sqlite3.Connection, path: str) -> str | None:
    """What `PRAGMA quick_check` finds wrong in the database `conn` opened (every page of every table
    and index, read from the file: run it on a connection whose cache is fresh), as one line with what
    to do; None when it finds nothing."""
    try:
        found = [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({_SHOWN})")]
    except sqlite3.DatabaseError as exc:  # too damaged to be checked at all
        found = [str(exc)]
    if found == ["ok"]:
        return None
    return (
        f"{path} has corrupt pages (quick_check: {'; '.join(' '.join(f.split()) for f in found)}): stop"
        f" the service, then recover it (sqlite3 {path} .recover | sqlite3 recovered.db, and move"
        " recovered.db in its place) or move it aside (a new, empty one is created at the next start)"
    )
