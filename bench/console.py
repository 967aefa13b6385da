"""The console's pages with a large outbox: load time of each page.

Run: python bench/console.py [--notifications 100000] [--rounds 20]
Fills an outbox with `notifications` notifications (2 alerts each, one job each, done, with 1 % dead
letters, as `serve` leaves them), starts `alertmanager-wecom serve` on it (a real process; its WeCom is
an unreachable address, nothing is sent) and times GET of every /ui page `rounds` times over loopback:
median, p95 and max per page. The target is under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import dump, free_port, machine, serve_relay, stop, wait_http, write_yaml

from alertmanager_wecom import samples
from alertmanager_wecom.outbox import NewJob, SQLiteOutbox
from alertmanager_wecom.reasons import Reason

PAGES = [
    "/ui",
    "/ui/deliveries",
    "/ui/deliveries?q=NodeDown",
    "/ui/deliveries?q=zhangsan&state=dead",
    "/ui/dead",
    "/ui/deliveries/1",
    "/ui/preview",
    "/ui/actions",
    "/ui/setup",
    "/ui/config",
]
TARGET = (
    '{"app":"ops","robot":null,"chat":null,"to_user":["zhangsan"],"to_party":[],"to_tag":[],"msgtype":null}'
)


async def fill(path: Path, count: int) -> None:
    outbox = SQLiteOutbox(path, synchronous="normal")
    now = time.time() - count
    try:
        for i in range(count):
            payload = json.dumps(samples.node_down(2, cluster=f"c{i % 97}"), ensure_ascii=False)
            await outbox.accept("default", [NewJob(TARGET, payload)], None, 0, now + i)
        jobs = await outbox.list_jobs(None, count)
        for job in jobs:
            if job.id % 100 == 0:
                await outbox.dead(job.id, "WeCom errcode 81013 (…)", Reason.RECIPIENTS, now + count)
            else:
                await outbox.done(job.id, now + count)
    finally:
        await outbox.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-console-"))
    t0 = time.monotonic()
    asyncio.run(fill(work / "outbox.db", args.notifications))
    filled = time.monotonic() - t0
    port = free_port()
    config = write_yaml(
        work / "relay.yaml",
        {
            "wecom": {"api_url": "http://127.0.0.1:9/cgi-bin/"},
            "apps": {"ops": {"corp_id": "ww", "agent_id": 1, "secret": "s"}},
            "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
            "storage": {"path": str(work / "outbox.db")},
            "server": {"admin_allow_loopback": True},
        },
    )
    relay = serve_relay(config, port, work / "relay.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        pages: dict[str, dict[str, float]] = {}
        with httpx.Client(base_url=base, timeout=30) as client:
            for page in PAGES:
                client.get(page).raise_for_status()  # warm
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    client.get(page).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                pages[page] = {
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
                    "max_ms": round(times[-1], 1),
                }
        print(
            dump(
                {
                    "machine": machine(),
                    "notifications": args.notifications,
                    "fill_seconds": round(filled),
                    "pages": pages,
                }
            )
        )
    finally:
        stop(relay)


if __name__ == "__main__":
    main()
