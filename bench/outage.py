"""WeCom unreachable for a while, then back: everything queued is delivered as digests, nothing dropped.

Run: python bench/outage.py [--outage-seconds 300 --notifications 200]
The simulator is stopped; notifications (5 alerts each, one person) keep arriving during the outage;
the simulator comes back (a new process: WeCom forgot the old token); the run ends when every alert is
visible. Reported: messages the person got, dropped by WeCom's limits, seconds from the end of the
outage to the last delivery, retries logged.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import httpx
from common import cli, dump, free_port, machine, notification, spawn, stop, wait_http, write_yaml

CORP, AGENT, SECRET = "wwsandbox0000001", 1000002, "sandbox-app-secret-0000000000000000000000"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage-seconds", type=float, default=300)
    parser.add_argument("--notifications", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-outage-"))
    sim_port, relay_port = free_port(), free_port()
    # Every message is counted: the inbox keeps them all, not the newest 500.
    sim_args = cli("simulator", "--listen", f"127.0.0.1:{sim_port}", "--inbox-per-recipient", "10000000")
    sim = spawn(sim_args, work / "sim.log")
    config = write_yaml(
        work / "relay.yaml",
        {
            "wecom": {"api_url": f"http://127.0.0.1:{sim_port}/cgi-bin/"},
            "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
            "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
            "storage": {"path": str(work / "outbox.db")},
        },
    )
    relay = spawn(
        cli("serve", "--config", str(config), "--listen", f"127.0.0.1:{relay_port}"), work / "relay.log"
    )
    base = f"http://127.0.0.1:{relay_port}"
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        wait_http(f"{base}/healthz")
        httpx.get(
            f"http://127.0.0.1:{sim_port}/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET}
        )
        stop(sim)
        names: list[str] = []
        gap = args.outage_seconds / args.notifications
        t0 = time.monotonic()
        for n in range(args.notifications):
            body = notification(f"o{n}", 5, prefix="out")
            names += [a["labels"]["instance"] for a in body["alerts"]]
            httpx.post(f"{base}/alerts/default", json=body, timeout=10).raise_for_status()
            time.sleep(max(0.0, t0 + (n + 1) * gap - time.monotonic()))
        sim = spawn(sim_args, work / "sim.log")
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        back = time.monotonic()
        visible: set[str] = set()
        while time.monotonic() - back < 600:
            entries = httpx.get(
                f"http://127.0.0.1:{sim_port}/admin/inbox", params={"user": "zhangsan"}
            ).json()["entries"]
            text = "\n".join(e["visible"] for e in entries if e["dropped"] is None)
            visible = set(re.findall(r"out-o\d+-\d+:9100", text)) & set(names)
            if len(visible) == len(names):
                break
            time.sleep(1)
        stats = httpx.get(f"http://127.0.0.1:{sim_port}/admin/stats").json()
        log = (work / "relay.log").read_text(encoding="utf-8")
        result = {
            "machine": machine(),
            "outage_seconds": args.outage_seconds,
            "notifications": args.notifications,
            "alerts": len(names),
            "alerts_visible": len(visible),
            "seconds_after_outage_to_last_delivery": round(time.monotonic() - back, 1),
            "messages_delivered": stats["delivered"],
            "messages_dropped": stats["dropped"],
            "digests": log.count("coalesced"),
            "retries_logged": log.count("retrying in"),
        }
        print(
            f"{len(visible)}/{len(names)} alerts visible {result['seconds_after_outage_to_last_delivery']}s after "
            f"a {args.outage_seconds:.0f}s outage, in {stats['delivered']} messages, {stats['dropped']} dropped"
        )
        print(dump(result))
    finally:
        stop(relay)
        stop(sim)


if __name__ == "__main__":
    main()
