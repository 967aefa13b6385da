"""Memory and CPU in a storm: peak RSS of the relay during a 100,000-alert storm, and CPU time per alert
from 1k to 100k alerts (each size in a fresh relay process).

Run: python bench/rss.py [--sizes 1000,10000,100000]
Notifications of 10 alerts are posted at concurrency 16, spread over 100 receivers (one person each,
so that WeCom's per-person limits let the storm drain); the run ends when the outbox has nothing pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
from common import (
    cli,
    cpu_seconds,
    dump,
    free_port,
    machine,
    notification,
    peak_rss_mb,
    serve_relay,
    spawn,
    stop,
    wait_http,
    with_children,
    write_yaml,
)

USERS = 100
CORP, AGENT, SECRET = "wwbench0000000001", 1000002, "bench-secret-00000000000000000000"


async def post_all(relay: str, notifications: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(notifications):
        queue.put_nowait(n)
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                body = json.dumps(notification(f"g{n}", 10, receiver=f"r{n % USERS}", prefix="h")).encode()
                while True:
                    response = await client.post(
                        f"{relay}/alerts/r{n % USERS}",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(worker() for _ in range(16)))


def run(size: int, work: Path) -> dict[str, float]:
    work.mkdir()
    sim_port, relay_port = free_port(), free_port()
    users = [f"u{i}" for i in range(USERS)]
    sim_config = write_yaml(
        work / "sim.yaml",
        {
            "corps": [{"corp_id": CORP, "users": users, "apps": [{"agent_id": AGENT, "secret": SECRET}]}],
            "inbox_per_recipient": 10_000_000,  # every message is counted, not each person's newest 500
        },
    )
    sim = spawn(
        cli("simulator", "--listen", f"127.0.0.1:{sim_port}", "--config", str(sim_config)), work / "sim.log"
    )
    config = write_yaml(
        work / "relay.yaml",
        {
            "wecom": {"api_url": f"http://127.0.0.1:{sim_port}/cgi-bin/"},
            "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
            "receivers": [
                {"name": f"r{i}", "targets": [{"app": "ops", "to_user": [users[i]]}]} for i in range(USERS)
            ],
            "storage": {"path": str(work / "outbox.db")},
        },
    )
    relay_proc = serve_relay(config, relay_port, work / "relay.log")
    relay = f"http://127.0.0.1:{relay_port}"
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        wait_http(f"{relay}/healthz")
        cpu_start = cpu_seconds(relay_proc.pid)
        t0 = time.monotonic()
        asyncio.run(post_all(relay, size // 10))
        ingest_seconds = time.monotonic() - t0
        while httpx.get(f"{relay}/readyz", timeout=30).json().get("pending", 1) > 0:
            time.sleep(0.5)
        total_seconds = time.monotonic() - t0
        family = with_children(relay_proc.pid)
        cpu = sum(cpu_seconds(pid) for pid in family) - cpu_start
        stats = httpx.get(f"http://127.0.0.1:{sim_port}/admin/stats", timeout=30).json()
        return {
            "alerts": size,
            "ingest_seconds": round(ingest_seconds, 1),
            "drained_seconds": round(total_seconds, 1),
            "relay_cpu_seconds": round(cpu, 2),
            "cpu_ms_per_alert": round(1000 * cpu / size, 3),
            # The relay and its ingest writer: the sum of their peaks (at most the peak of the sum).
            "peak_rss_mb": round(sum(peak_rss_mb(pid) for pid in family), 1),
            "messages_delivered": stats["delivered"],
            "messages_dropped": stats["dropped"],
        }
    finally:
        stop(relay_proc)
        stop(sim)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-rss-"))
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        result = run(size, work / str(size))
        results.append(result)
        print(
            f"{size:>7} alerts: peak RSS {result['peak_rss_mb']} MB, CPU {result['cpu_ms_per_alert']} ms/alert, "
            f"ingest {result['ingest_seconds']}s, drained {result['drained_seconds']}s, "
            f"{result['messages_delivered']} messages, {result['messages_dropped']} dropped",
            flush=True,
        )
    print(dump({"machine": machine(), "runs": results}))


if __name__ == "__main__":
    main()
