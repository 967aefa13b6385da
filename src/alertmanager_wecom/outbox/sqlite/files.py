"""`private_database`: the outbox's and the card actions' SQLite files are readable by the service's user
only. They hold every alert's labels and annotations, and the card actions' response codes.

SQLite creates a database's -wal and -shm files with the database file's own mode, so creating that
file 0600 before SQLite opens it covers all three. Standard library only: the ingest child imports it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(directory: str | Path) -> None:
    """Create `directory` and any missing parent 0700. A directory that exists keeps its mode: the
    operator chose it (a group that backs it up, a volume's mount point)."""
    missing: list[Path] = []
    current = Path(directory)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        # Made meanwhile by another process (the ingest child, a second replica's start): that is fine.
        with contextlib.suppress(FileExistsError):
            # One by one: mkdir(parents=True) would make the parents with the umask's mode (often 0755).
            os.mkdir(path, DIRECTORY_MODE)


def private_database(path: str | Path) -> None:
    """Before SQLite opens `path`: create its directory (see `private_directory`) and the file, empty
    (an empty file is an empty database), 0600. An existing file is left as it is."""
    if str(path) == ":memory:":
        return
    p = Path(path)
    private_directory(p.parent)
    try:
        # O_EXCL: a file that exists, or a link (even a dangling one), is never opened here.
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
