"""Run ASGI apps on real loopback ports for tests: uvicorn in a thread, or the CLI in a subprocess."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

# Ports handed out by `free_port`: below the kernel's ephemeral range (32768 and up by default), a block
# for each pytest-xdist worker. A port the kernel picked (port 0) was free when asked, but every client
# connection of every worker takes its local port from that same range, so another worker's connection
# could take it before the server bound it ("address already in use", a flaky test). These a client
# never takes, and no other worker of this run hands them out.
_PORT_BLOCK = 1000
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_FIRST_PORT = 20000 + (int(_WORKER[2:]) % 12 if _WORKER[2:].isdigit() else 0) * _PORT_BLOCK
_next_port = random.randrange(_PORT_BLOCK)  # another run on the same machine likely starts elsewhere


def free_port() -> int:
    """A loopback port nothing listens on now, for a server the test starts next (see `_FIRST_PORT`)."""
    global _next_port
    for _ in range(_PORT_BLOCK):
        port = _FIRST_PORT + _next_port % _PORT_BLOCK
        _next_port += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # taken (another run on this machine, a server still closing): the next one
                continue
            return port
    raise RuntimeError(f"no free port in {_FIRST_PORT}-{_FIRST_PORT + _PORT_BLOCK - 1}")


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1; yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def stop_process(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def cli_process(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `alertmanager-wecom ARGS` as a real process, logging to `log_path`."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertmanager_wecom", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            yield proc
        finally:
            stop_process(proc)


@contextmanager
def simulator_process(directory: Path, *args: str) -> Iterator[str]:
    """The `simulator` command as a real process on a free loopback port (its log in `directory`);
    yields its base URL once it answers."""
    port = free_port()
    with cli_process(["simulator", "--listen", f"127.0.0.1:{port}", *args], directory / "sim.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/admin/stats", proc=proc)
        yield url


def self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (openssl), valid a day: (cert, key)."""
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
