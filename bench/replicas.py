"""Replicas on Redis: a storm through three replicas, and how long a dead replica's targets wait.

Run: python bench/replicas.py [--groups 200 --per-group 10] [--lease 30]
Starts the simulator (WeCom's limits), a redis-server (appendfsync always) and three `serve` processes
sharing it (real processes on loopback).
1. Storm: `groups` notifications of `per-group` alerts for one person, posted round-robin to the three
   replicas at once, each also to the next replica (two Alertmanagers): alerts visible, messages seen,
   dropped by WeCom's limits, time to the last delivery.
2. Takeover: a replica is killed (-9) while it holds the person's target with messages waiting; the time
   from the kill until the next message arrives (another replica took the target: about `lease`).
"""

from __future__ import annotations

import argparse
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import (
    cli,
    dump,
    free_port,
    machine,
    notification,
    redis_server,
    spawn,
    stop,
    wait_http,
    write_yaml,
)

CORP, AGENT, SECRET = "wwsandbox0000001", 1000002, "sandbox-app-secret-0000000000000000000000"


def inbox(sim: str, user: str = "zhangsan") -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/admin/inbox", params={"user": user}, timeout=10).json()["entries"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--lease", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-replicas-"))
    procs = []
    try:
        sim_port, redis_port = free_port(), free_port()
        # Every message is counted: the inbox keeps them all, not the newest 500.
        sim_args = cli("simulator", "--listen", f"127.0.0.1:{sim_port}", "--inbox-per-recipient", "10000000")
        procs.append(spawn(sim_args, work / "sim.log"))
        procs.append(redis_server(work, redis_port))
        sim = f"http://127.0.0.1:{sim_port}"
        wait_http(f"{sim}/admin/stats")
        config = write_yaml(
            work / "relay.yaml",
            {
                "wecom": {"api_url": f"{sim}/cgi-bin/"},
                "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
                "receivers": [
                    {"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]},
                    {"name": "other", "targets": [{"app": "ops", "to_user": ["lisi"]}]},
                ],
                "storage": {
                    "backend": "redis",
                    "url": f"redis://127.0.0.1:{redis_port}/0",
                    "lease": f"{args.lease}s",
                },
            },
        )
        relays = []
        for index in range(3):
            port = free_port()
            procs.append(
                spawn(
                    cli("serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"),
                    work / f"relay-{index}.log",
                )
            )
            relays.append(f"http://127.0.0.1:{port}")
        for url in relays:
            wait_http(f"{url}/healthz")

        names = [f"host-g{g}-{i}" for g in range(args.groups) for i in range(args.per_group)]
        t0 = time.time()
        with httpx.Client(timeout=30) as client:
            for g in range(args.groups):
                body = notification(f"g{g}", args.per_group)
                for copy in (0, 1):
                    client.post(f"{relays[(g + copy) % 3]}/alerts/default", json=body).raise_for_status()
        # Until every alert is visible (the person's limit may hold a part back to the next minute).
        while time.time() - t0 < 300:
            text = "\n".join(e["visible"] for e in inbox(sim) if e["dropped"] is None)
            if set(names) <= set(re.findall(r"host-g\d+-\d+", text)):
                break
            time.sleep(1)
        time.sleep(5)  # duplicates, if any, would arrive now
        entries = inbox(sim)
        shown = [e for e in entries if e["dropped"] is None]
        text = "\n".join(e["visible"] for e in shown)
        found = set(re.findall(r"host-g\d+-\d+", text))
        storm = {
            "alerts": len(names),
            "alerts_visible": len(found & set(names)),
            "messages_seen": len(shown),
            "messages_dropped": len(entries) - len(shown),
            "seconds_to_last_delivery": round(max(e["at"] for e in shown) - t0, 1) if shown else None,
        }
        print(f"storm: {storm}", flush=True)

        # Takeover: WeCom answers slowly (3 s), so relay 0 is in the middle of sending to lisi when killed.
        httpx.post(
            f"{sim}/admin/faults", json={"rate": 1.0, "kinds": ["slow"], "slow_seconds": 3}, timeout=10
        )
        for g in range(5):
            httpx.post(
                f"{relays[0]}/alerts/other", json=notification(f"t{g}", 1, receiver="other"), timeout=30
            )
        time.sleep(1.5)
        victim = procs[2]  # relay 0
        victim.send_signal(signal.SIGKILL)
        killed = time.time()
        victim.wait(10)
        httpx.post(f"{sim}/admin/faults", json={"rate": 0.0}, timeout=10)
        after = None
        while time.time() - killed < args.lease * 4 + 60:
            late = [e["at"] for e in inbox(sim, "lisi") if e["at"] > killed]
            if late:
                after = min(late) - killed
                break
            time.sleep(0.2)
        takeover = {
            "lease_seconds": args.lease,
            "seconds_from_kill_to_next_message": round(after, 1) if after else None,
        }
        print(f"takeover: {takeover}", flush=True)
        print(dump({"machine": machine(), "storm": storm, "takeover": takeover}))
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    main()
