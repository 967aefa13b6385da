"""Shared helpers for the benchmarks: processes on loopback, payloads, /proc readings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from alertmanager_wecom.samples import fingerprint

ROOT = Path(__file__).resolve().parents[1]


def extract(ref: str, into: Path) -> Path:
    """The package's src/ as of commit `ref` (git archive: no work tree of the repository is touched),
    for a relay run with PYTHONPATH set to it: before and after in one run."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(url)


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "alertmanager_wecom", *args]


def serve_relay(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The relay as a real process on 127.0.0.1:`port`, logging warnings and worse to `log`."""
    return spawn(
        cli("--log-level", "warning", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"), log
    )


def redis_server(work: Path, port: int) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:`port`, its append-only file in `work`, fsynced on every write (the
    durability the README recommends)."""
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--appendonly", "yes"]
    args += ["--appendfsync", "always", "--save", ""]
    return spawn(["redis-server", *args], work / "redis.log")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def with_children(pid: int) -> list[int]:
    """The process and its children (the relay's ingest writer): their CPU and memory count together."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                pids.append(int(stat.parent.name))
        except OSError:
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def notification(group: str, alerts: int, receiver: str = "default", prefix: str = "host") -> dict[str, Any]:
    items = []
    for i in range(alerts):
        labels = {
            "alertname": "BenchAlert",
            "instance": f"{prefix}-{group}-{i}:9100",
            "job": "node",
            "severity": "warning",
            "group": group,
        }
        items.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{prefix}-{group}-{i} 响应慢",
                    "description": "p99 latency over 2s",
                },
                "startsAt": "2026-11-28T09:00:00.000000000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
                "fingerprint": fingerprint(labels),
            }
        )
    return {
        "version": "4",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "status": "firing",
        "receiver": receiver,
        "alerts": items,
        "groupLabels": {"group": group},
        "commonLabels": {"alertname": "BenchAlert", "job": "node", "severity": "warning", "group": group},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def dump(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2)
