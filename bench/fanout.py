"""Fan-out: one alert each to N different people, WeCom answering every call after a delay.

Run: python bench/fanout.py [--people 1000 --latency 0.05 --backend sqlite] [--before REF --rounds 2]
The simulator knows N people (u0000…) and answers every call (gettoken and message/send) after
`--latency` seconds (its "slow" fault on every call). The relay (`alertmanager-wecom serve`, a real
process) has one receiver whose target is `to_user: ["{{ labels.owner }}"]`; N webhooks of one alert
each, owner u0000…, are posted 16 at a time. Reported: the time from the last webhook's 2xx to the
moment every person has their message (polled every 20 ms), the messages and the calls.
--before REF: the relay of commit REF too (its src/, extracted with git archive), alternated with this
checkout's, `--rounds` times each, in one run (the same machine state for both).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import (
    cli,
    cpu_seconds,
    dump,
    extract,
    free_port,
    machine,
    notification,
    redis_server,
    spawn,
    stop,
    wait_http,
    with_children,
    write_yaml,
)

CORP, AGENT, SECRET = "wwsandbox0000001", 1000002, "sandbox-app-secret-0000000000000000000000"


def people(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


async def post_all(url: str, owners: list[str], concurrency: int) -> float:
    """Post one webhook per owner, `concurrency` at a time; returns when the last was answered 2xx."""
    queue = list(enumerate(owners))
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker() -> None:
            while queue:
                i, owner = queue.pop()
                body: dict[str, Any] = notification(f"fan{i}-{time.time_ns()}", 1)
                body["alerts"][0]["labels"]["owner"] = owner
                body["commonLabels"]["owner"] = owner
                answer = await client.post(url, json=body)
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic()


def one_run(args: argparse.Namespace, work: Path, src: Path | None, label: str) -> dict[str, Any]:
    work.mkdir(parents=True)
    owners = people(args.people)
    sim_port, relay_port = free_port(), free_port()
    sim_settings = write_yaml(
        work / "sim.yaml",
        {
            "corps": [
                {
                    "corp_id": CORP,
                    "users": owners,
                    "apps": [{"agent_id": AGENT, "secret": SECRET, "name": "alerts"}],
                }
            ],
            "faults": {"rate": 1.0, "kinds": ["slow"], "slow_seconds": args.latency},
            "inbox_per_recipient": 5,
        },
    )
    redis = None
    storage: dict[str, Any] = {"path": str(work / "outbox.db")}
    if args.backend == "redis":
        redis_port = free_port()
        redis = redis_server(work, redis_port)
        storage = {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"}
    config = write_yaml(
        work / "relay.yaml",
        {
            "wecom": {"api_url": f"http://127.0.0.1:{sim_port}/cgi-bin/"},
            "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
            "receivers": [
                {"name": "default", "targets": [{"app": "ops", "to_user": ["{{ labels.owner }}"]}]}
            ],
            "storage": storage,
            **({"delivery": {"workers": args.workers}} if args.workers else {}),
        },
    )
    env = {"PYTHONPATH": str(src)} if src else None
    sim = spawn(
        cli("simulator", "--config", str(sim_settings), "--listen", f"127.0.0.1:{sim_port}"), work / "sim.log"
    )
    relay_args = cli(
        "--log-level", "warning", "serve", "--config", str(config), "--listen", f"127.0.0.1:{relay_port}"
    )
    relay = spawn(relay_args, work / "relay.log", env=env)
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        wait_http(f"http://127.0.0.1:{relay_port}/healthz")
        started = time.monotonic()
        last_webhook = asyncio.run(post_all(f"http://127.0.0.1:{relay_port}/alerts/default", owners, 16))
        with httpx.Client(timeout=10) as client:
            while True:
                stats = client.get(f"http://127.0.0.1:{sim_port}/admin/stats").json()
                if stats["delivered"] >= args.people:
                    break
                if time.monotonic() - last_webhook > args.give_up:
                    break
                time.sleep(0.02)
        done = time.monotonic()
        relay_cpu = sum(cpu_seconds(pid) for pid in with_children(relay.pid))
        result = {
            "code": label,
            "people": args.people,
            "posting_s": round(last_webhook - started, 2),
            "after_last_webhook_s": round(done - last_webhook, 2),
            "relay_cpu_s": round(relay_cpu, 2),
            "delivered": stats["delivered"],
            "dropped": stats["dropped"],
            "calls": stats["calls"],
        }
        print(
            f"{label:<8} posted {args.people} in {result['posting_s']:5.2f} s; all delivered"
            f" {result['after_last_webhook_s']:5.2f} s after the last webhook"
            f" ({stats['delivered']} delivered, {stats['dropped']} dropped; relay CPU {relay_cpu:.1f} s)",
            flush=True,
        )
        return result
    finally:
        stop(relay)
        stop(sim)
        if redis is not None:
            stop(redis)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds WeCom takes per call")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "redis"])
    parser.add_argument("--before", help="a commit to compare with (alternated with this checkout)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, help="delivery.workers (default: the relay's own)")
    parser.add_argument("--give-up", type=float, default=120.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-fanout-"))
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if args.before:
        codes.insert(0, (args.before[:8], extract(args.before, work / "before")))
    runs = []
    for round_ in range(args.rounds):
        for label, src in codes:
            runs.append(one_run(args, work / f"{label}-{round_}", src, label))
    print(
        dump({"machine": machine(), "python": sys.version.split()[0], "backend": args.backend, "runs": runs})
    )


if __name__ == "__main__":
    main()
