"""Event-loop stalls: how long the relay stops answering while it ingests, then delivers, one huge webhook.

Run: python bench/stall.py [--sizes 20000,75000] [--receivers whole,match,owner]
The relay (`alertmanager-wecom serve --config`, delivering to a simulator) gets one webhook of N realistic
alerts while a prober thread sends GET /healthz every 5 ms on a kept-alive connection: the slowest answer
is the worst stall of the event loop (a request that arrives during a stall waits for its end). Two
windows: ingest (until the big webhook's 200, whose time is reported too) and delivery (until nothing is
pending). Receivers: `whole` (one target: the notification is stored as it came), `match` (a target with
`match:` and one after it: alerts are looked at one by one) and `owner` (`to_user: ["{{ labels.owner }}"]`:
one job per owner, 50 owners). Each receiver has its own recipients, so that WeCom's per-person limits
do not turn a later run's delivery into a paced digest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
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
    serve_relay,
    spawn,
    stop,
    wait_http,
    write_yaml,
)

from alertmanager_wecom.samples import fingerprint

CORP, AGENT, SECRET = "wwbench0000000001", 1000002, "bench-secret-00000000000000000000"
OWNERS = [f"u{i}" for i in range(50)]
RECEIVERS: dict[str, list[dict[str, Any]]] = {
    "whole": [{"app": "ops", "to_user": ["zhangsan"]}],
    "match": [
        {"app": "ops", "to_user": ["lisi"], "match": ['severity="critical"'], "continue": False},
        {"app": "ops", "to_user": ["wangwu"]},
    ],
    "owner": [{"app": "ops", "to_user": ["{{ labels.owner }}"]}],
}


def big_webhook(size: int, receiver: str, tag: str) -> bytes:
    """`size` alerts of one group: half critical, owners spread over 50 people; a groupKey never seen."""
    body = notification(tag, size, receiver=receiver)
    for i, alert in enumerate(body["alerts"]):
        labels = alert["labels"]
        labels["severity"] = "critical" if i % 2 else "warning"
        labels["owner"] = OWNERS[i % len(OWNERS)]
        alert["fingerprint"] = fingerprint(labels)
    return json.dumps(body, ensure_ascii=False).encode()


class Prober(threading.Thread):
    """GET /healthz every `interval` seconds; keeps (sent at, seconds to answer) of each."""

    def __init__(self, url: str, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.halt.is_set():
                sent = time.monotonic()
                client.get(self.url).raise_for_status()
                self.samples.append((sent, time.monotonic() - sent))
                self.halt.wait(self.interval)

    def worst_ms(self, start: float, end: float) -> tuple[float, int]:
        """The slowest answer to a probe sent in [start, end), in ms, and how many probes were sent."""
        inside = [latency for sent, latency in self.samples if start <= sent < end]
        return (round(1000 * max(inside), 1) if inside else float("nan")), len(inside)


def pending(relay: str) -> int:
    return int(httpx.get(f"{relay}/readyz", timeout=60).json().get("pending", 1))


def run(relay: str, receiver: str, size: int, tag: str) -> dict[str, Any]:
    body = big_webhook(size, receiver, tag)
    prober = Prober(f"{relay}/healthz")
    prober.start()
    time.sleep(0.5)  # a quiet baseline
    quiet_start = time.monotonic()
    time.sleep(0.5)
    t0 = time.monotonic()
    response = httpx.post(
        f"{relay}/alerts/{receiver}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=600,
    )
    t1 = time.monotonic()
    assert response.status_code == 200, response.text
    while pending(relay) > 0:
        time.sleep(0.2)
    t2 = time.monotonic()
    time.sleep(0.2)
    prober.halt.set()
    prober.join()
    quiet, _ = prober.worst_ms(quiet_start, t0)
    ingest, ingest_probes = prober.worst_ms(t0, t1)
    delivery, delivery_probes = prober.worst_ms(t1, t2)
    return {
        "receiver": receiver,
        "alerts": size,
        "body_mb": round(len(body) / 1e6, 1),
        "time_to_200_s": round(t1 - t0, 2),
        "worst_stall_ingest_ms": ingest,
        "probes_during_ingest": ingest_probes,
        "delivered_after_s": round(t2 - t1, 2),
        "worst_stall_delivery_ms": delivery,
        "probes_during_delivery": delivery_probes,
        "worst_healthz_when_idle_ms": quiet,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,75000")
    parser.add_argument("--receivers", default="whole,match,owner")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-stall-"))
    sim_port, relay_port = free_port(), free_port()
    sim_config = write_yaml(
        work / "sim.yaml",
        {
            "corps": [
                {
                    "corp_id": CORP,
                    "users": ["zhangsan", "lisi", "wangwu", *OWNERS],
                    "apps": [{"agent_id": AGENT, "secret": SECRET}],
                }
            ]
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
            "receivers": [{"name": name, "targets": targets} for name, targets in RECEIVERS.items()],
            "server": {"max_body_bytes": 256 * 1024 * 1024},
            "storage": {"path": str(work / "outbox.db")},
        },
    )
    relay_proc = serve_relay(config, relay_port, work / "relay.log")
    relay = f"http://127.0.0.1:{relay_port}"
    results = []
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        wait_http(f"{relay}/healthz")
        run(relay, "whole", 10, f"warmup-{time.time_ns()}")
        for size in (int(s) for s in args.sizes.split(",")):
            for receiver in args.receivers.split(","):
                result = run(relay, receiver, size, f"stall-{time.time_ns()}")
                results.append(result)
                print(
                    f"{receiver:<6} {size:>6} alerts ({result['body_mb']} MB): 200 after "
                    f"{result['time_to_200_s']} s, worst /healthz {result['worst_stall_ingest_ms']} ms; "
                    f"delivered after {result['delivered_after_s']} s more, worst /healthz "
                    f"{result['worst_stall_delivery_ms']} ms (idle: {result['worst_healthz_when_idle_ms']} ms)",
                    flush=True,
                )
        print(dump({"machine": machine(), "runs": results}))
    finally:
        stop(relay_proc)
        stop(sim)


if __name__ == "__main__":
    main()
