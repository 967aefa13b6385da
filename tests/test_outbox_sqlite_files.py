"""The outbox's and the card actions' SQLite files (and their -wal and -shm) are the service's user's
alone (0600), in a directory made 0700 when the service makes it; a directory that exists keeps its mode.
Checked with os.stat on the files the real stores write, under a umask that would let others read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertmanager_wecom.actions.sqlite_store import SQLiteCardStore, actions_path
from alertmanager_wecom.outbox import NewJob, SQLiteOutbox
from alertmanager_wecom.outbox.sqlite import storage_problem

pytestmark = pytest.mark.anyio
JOBS = [NewJob("t1", '{"app": "ops", "to_user": ["a"]}')]


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask that lets the group and others read (and the group write) what is created: the modes
    checked below must come from the service, not from the test's umask."""
    before = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_of(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


async def test_the_outbox_files_are_0600_in_directories_made_0700(tmp_path: Path) -> None:
    db = tmp_path / "made" / "by-the-service" / "outbox.db"
    store = SQLiteOutbox(db)
    try:
        # A webhook through the ingest child, and the dispatcher's write through the writer thread:
        # both processes have the WAL open now.
        accepted = await store.accept("r", JOBS, "k", 300, 100.0)
        assert accepted.notification_id is not None
        await store.done(1, 101.0)
        assert {path.name: mode(path) for path in files_of(db)} == {
            "outbox.db": 0o600,
            "outbox.db-wal": 0o600,
            "outbox.db-shm": 0o600,
        }
        assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
    finally:
        await store.close()


async def test_the_card_actions_files_are_0600_in_a_directory_made_0700(tmp_path: Path) -> None:
    db = actions_path(tmp_path / "data" / "outbox.db")
    store = SQLiteCardStore(db)
    try:
        await store.ack("default", "group", "zhangsan", 100.0)
        assert db.name == "outbox-actions.db"
        assert [mode(path) for path in files_of(db)] == [0o600, 0o600, 0o600]
        assert mode(db.parent) == 0o700
    finally:
        await store.close()


async def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "var-lib"
    shared.mkdir()
    shared.chmod(0o750)  # e.g. a group that backs it up
    store = SQLiteOutbox(shared / "outbox.db")
    try:
        await store.accept("r", JOBS, "k", 300, 100.0)
        assert mode(shared) == 0o750
        assert mode(shared / "outbox.db") == 0o600
    finally:
        await store.close()


def test_the_start_up_check_creates_the_outbox_0600_in_a_directory_made_0700(tmp_path: Path) -> None:
    # `serve` runs storage_problem before the service starts: it is the first to create them.
    db = tmp_path / "new" / "outbox.db"
    assert storage_problem(db) is None
    assert (mode(db.parent), mode(db)) == (0o700, 0o600)
