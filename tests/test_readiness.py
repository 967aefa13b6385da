"""/readyz tells whether a webhook would be committed now, and the service refuses to start on an outbox
it cannot open (one line naming storage.path, never a traceback)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import main
from alertmanager_wecom.outbox.sqlite.schema import create_schema
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from tests.helpers import relay_config, wait_until
from tests.servers import cli_process, free_port, serve_in_thread, wait_http


@pytest.fixture
def served(simulator: str, tmp_path: Path) -> Iterator[Any]:
    """Start a relay (optionally with storage.max_size_mb); yields (base URL, the app's Relay)."""
    servers: list[Any] = []

    def start(max_size_mb: int | None = None) -> tuple[str, Any]:
        config = relay_config(simulator + "/cgi-bin/", tmp_path / "outbox.db")
        if max_size_mb is not None:
            storage = config.storage.model_copy(update={"max_size_mb": max_size_mb})
            config = config.model_copy(update={"storage": storage})
        app = create_app(config)
        cm = serve_in_thread(app)
        servers.append(cm)
        return cm.__enter__(), app.state.relay

    yield start
    for cm in servers:
        cm.__exit__(None, None, None)


def ready(base: str) -> httpx.Response:
    return httpx.get(f"{base}/readyz", timeout=30)


def problems(base: str) -> str:
    response = ready(base)
    return " ".join(response.json().get("problems", [])) if response.status_code == 503 else ""


def checkpoint(db: Path) -> None:
    """Everything into the file, so that nothing is read from the WAL: a TRUNCATE checkpoint, again until
    it is complete. While the relay reads (its dispatcher) it may not be, and a page left in the WAL is
    what every connection reads, whatever the test writes over that page in the file."""

    def complete() -> bool:
        with sqlite3.connect(db) as conn:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy == 0 and frames == copied == 0)

    wait_until(complete, 10, "a complete checkpoint of the outbox's WAL")


def pending(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs WHERE state = 'pending'").fetchone()[0])


def test_a_corrupt_outbox_is_not_ready_until_it_is_restored(
    served: Any, tmp_path: Path, sim_state: SimulatorState
) -> None:
    base, relay = served()
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1)).status_code == 200
    wait_until(lambda: sim_state.entries("zhangsan"), 10, "delivery")
    assert ready(base).status_code == 200
    db = tmp_path / "outbox.db"
    checkpoint(db)
    original = db.read_bytes()
    with db.open("r+b") as f:  # overwritten in place: the open connections have it cached
        f.write(b"\x00garbage" * (len(original) // 8))
    # and the ingest child is restarted on it
    os.kill(relay.outbox.ingest_pid, signal.SIGKILL)
    # 30 s: the killed ingest child is started again and reads the file; on a loaded machine that is slow.
    wait_until(lambda: "not a database" in problems(base), 30, "readiness to report the corrupt file")
    refused = httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="b"))
    assert refused.status_code == 503
    with db.open("r+b") as f:
        f.write(original)
    wait_until(lambda: ready(base).status_code == 200, 30, "readiness to recover")
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="c")).status_code == 200


def test_an_outbox_file_replaced_while_open_is_not_ready(served: Any, tmp_path: Path) -> None:
    base, _relay = served()
    assert ready(base).status_code == 200
    db = tmp_path / "outbox.db"
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    os.replace(copy, db)  # the service would go on writing to the old, unlinked file
    wait_until(lambda: "replaced or removed while open" in problems(base), 10, "readiness to report it")


def test_an_outbox_locked_by_another_process_is_not_ready(served: Any, tmp_path: Path) -> None:
    base, _relay = served()
    assert ready(base).status_code == 200
    other = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO sends(rate_key, at) VALUES ('x', 0)")
        wait_until(lambda: "did not complete a test write" in problems(base), 10, "the lock to show")
    finally:
        other.execute("COMMIT")
        other.close()
    wait_until(lambda: ready(base).status_code == 200, 10, "readiness to recover")


def test_a_full_outbox_is_not_ready_until_there_is_room(
    served: Any, tmp_path: Path, sim_state: SimulatorState
) -> None:
    base, _relay = served(max_size_mb=1)
    payload = samples.node_down(1)
    payload["commonAnnotations"] = {"padding": "x" * 300_000}
    codes = []
    for i in range(8):
        codes.append(httpx.post(f"{base}/alerts/default", json={**payload, "groupKey": f"g{i}"}).status_code)
        if codes[-1] == 503:
            break
    assert codes[0] == 200 and codes[-1] == 503
    assert "the outbox is full" in problems(base)
    # Operators make room: the delivered notifications are purged.
    wait_until(lambda: pending(tmp_path / "outbox.db") == 0, 20, "deliveries")
    purged = CliRunner().invoke(
        main, ["outbox", "purge", "--db", str(tmp_path / "outbox.db"), "--state", "done"]
    )
    assert purged.exit_code == 0, purged.output
    wait_until(lambda: ready(base).status_code == 200, 10, "readiness to recover")
    assert httpx.post(f"{base}/alerts/default", json={**payload, "groupKey": "after"}).status_code == 200


def test_the_ingest_writer_killed_is_started_again_and_ready(served: Any) -> None:
    base, relay = served()
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1)).status_code == 200
    first = relay.outbox.ingest_pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: ready(base).status_code == 200 and relay.outbox.ingest_pid != first, 10, "a new child")
    assert "alertmanager_wecom_ingest_writer_exits_total 1.0" in httpx.get(f"{base}/metrics").text


# -- start-up --------------------------------------------------------------------------------------------


def config_with_storage(tmp_path: Path, storage_path: Path) -> Path:
    raw = {
        "wecom": {"api_url": "http://127.0.0.1:9/cgi-bin/"},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
        "storage": {"path": str(storage_path)},
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("directory", "is a directory"),
        ("not_a_database", "file is not a database"),
        ("parent_is_a_file", "is a file, not a directory"),
    ],
)
def test_an_outbox_that_cannot_be_opened_stops_serve_and_check_config_with_one_line(
    tmp_path: Path, case: str, words: str
) -> None:
    storage = tmp_path / "outbox.db"
    if case == "directory":
        storage.mkdir()
    elif case == "not_a_database":
        storage.write_text("these are not the rows you are looking for\n" * 100, encoding="utf-8")
    else:
        (tmp_path / "data").write_text("a file", encoding="utf-8")
        storage = tmp_path / "data" / "outbox.db"
    config = config_with_storage(tmp_path, storage)
    for command in (
        ["serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        ["check-config", str(config)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "alertmanager_wecom", *command], capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"storage.path {storage}" in lines[0] and words in lines[0]
        assert "Traceback" not in result.stdout + result.stderr


def test_check_config_does_not_create_the_outbox(tmp_path: Path) -> None:
    storage = tmp_path / "data" / "outbox.db"
    result = CliRunner().invoke(main, ["check-config", str(config_with_storage(tmp_path, storage))])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data").exists()


# -- corrupt pages ---------------------------------------------------------------------------------------


def overwrite_page(db: Path, page: int, data: bytes | None = None) -> bytes:
    """Write `data` (default: garbage) over page `page` (1-based) of the file; returns what was there."""
    with sqlite3.connect(db) as conn:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    with db.open("r+b") as f:
        f.seek((page - 1) * page_size)
        original = f.read(page_size)
        f.seek((page - 1) * page_size)
        f.write(data if data is not None else b"\xde\xad\xbe\xef" * (page_size // 4))
    return original


def test_corrupt_pages_found_at_start_are_logged_by_serve_and_reported_by_readiness(tmp_path: Path) -> None:
    storage = tmp_path / "outbox.db"
    with sqlite3.connect(storage) as conn:
        create_schema(conn)
        conn.executemany(
            "INSERT INTO notifications(receiver, received_at, payload) VALUES ('default', 0, ?)",
            [(f"{i} " + "x" * 1000,) for i in range(200)],
        )
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        roots = {int(row[0]) for row in conn.execute("SELECT rootpage FROM sqlite_master")}
    middle = pages // 2
    assert middle not in roots  # a page of notifications' rows: no write of the probe's walks through it
    overwrite_page(storage, middle)
    port = free_port()
    with cli_process(
        ["serve", "--config", str(config_with_storage(tmp_path, storage)), "--listen", f"127.0.0.1:{port}"],
        tmp_path / "serve.log",
    ) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc=proc)
        answer = ready(base)
        log = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert answer.status_code == 503, answer.text
    reason = " ".join(answer.json()["problems"])
    assert f"{storage} has corrupt pages (quick_check: " in reason and ".recover" in reason
    assert f"{storage} has corrupt pages" in log and "Traceback" not in log


def test_corrupt_pages_a_webhook_meets_make_the_outbox_not_ready_until_restored(
    served: Any, tmp_path: Path, sim_state: SimulatorState
) -> None:
    base, relay = served()
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1)).status_code == 200
    wait_until(lambda: sim_state.entries("zhangsan"), 10, "delivery")
    db = tmp_path / "outbox.db"
    wait_until(lambda: pending(db) == 0, 10, "the job done")
    checkpoint(db)
    with sqlite3.connect(db) as conn:
        jobs = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchone()[0])
    original = overwrite_page(db, jobs)  # every new job walks through it; the probe's row does not
    os.kill(relay.outbox.ingest_pid, signal.SIGKILL)  # the next child reads the page from the file
    answers: list[int] = []

    def refused_and_not_ready() -> bool:
        answers.append(
            httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="b")).status_code
        )
        return answers[-1] == 503 and "has corrupt pages (quick_check: " in problems(base)

    wait_until(refused_and_not_ready, 30, "readiness to report the corrupt pages the webhook met")
    assert set(answers) == {503}
    overwrite_page(db, jobs, original)
    wait_until(lambda: ready(base).status_code == 200, 30, "readiness to recover")
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="c")).status_code == 200
