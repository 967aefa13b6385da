"""A real redis-server (Debian package) for the tests: started in a temporary directory on a free
loopback port, with the durability settings the README recommends (AOF, fsync on every write)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port, stop_process


def binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "redis-server is not installed: run ./test.sh (it installs the Debian package redis-server)"
        )
    return found


@contextmanager
def run_redis(directory: Path, port: int | None = None) -> Iterator[str]:
    """A redis-server on 127.0.0.1; yields its URL. Started again on the same port and directory, it
    reads back its append-only file."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (directory / "redis.log").open("ab")
    proc = subprocess.Popen(
        [
            binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start: {(directory / 'redis.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        stop_process(proc)
        log.close()
