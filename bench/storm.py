"""Storm fidelity: Alertmanager's native wechat_configs vs this service, against the simulator, in one run.

Run: python bench/storm.py [--groups 200 --per-group 10] [--faults 0.3] [--chart]
(--chart: the relay's target has `chart: true`, its data from the simulator's made-up series: charts must
neither delay nor displace the alerts' text.)
Both paths get the same alerts at the same moment, each through its own real Alertmanager and its own
simulator (WeCom's documented limits: 2048-byte truncation, 30 messages/min per member, silent drop).
Reported per path: alerts visible to the person, messages dropped by WeCom's limits, messages seen,
time from posting to the last delivery.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import cli, dump, free_port, machine, spawn, stop, wait_http, write_yaml

CORP, AGENT, SECRET = "wwsandbox0000001", 1000002, "sandbox-app-secret-0000000000000000000000"


def alertmanager(work: Path, name: str, receiver: dict[str, Any]) -> tuple[Any, str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "install prometheus-alertmanager"
    port = free_port()
    config = write_yaml(
        work / f"{name}.yml",
        {
            "route": {
                "receiver": "r",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            },
            "receivers": [{"name": "r", **receiver}],
        },
    )
    proc = spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={work / name}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        work / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready")
    return proc, url


def visible_alerts(sim: str, names: list[str]) -> dict[str, Any]:
    entries = httpx.get(f"{sim}/admin/inbox", params={"user": "zhangsan"}, timeout=10).json()["entries"]
    shown = [e for e in entries if e["dropped"] is None]
    text = "\n".join(e["visible"] for e in shown)
    found = set(re.findall(r"(?<![\w-])host-\d+-\d+(?![\w-])", text))
    return {
        "alerts_visible": len(found & set(names)),
        "messages_seen": len(shown),
        "messages_dropped": len(entries) - len(shown),
        "truncated": sum(e["truncated"] for e in shown),
        "last_delivery_at": max((e["at"] for e in shown), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--faults", type=float, default=0.0, help="fraction of WeCom calls answering -1")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--chart", action="store_true", help="chart: true on the relay's target")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-storm-"))
    procs = []
    try:
        sims = {}
        for path in ("native", "relay"):
            port = free_port()
            fault_args = ["--fault-rate", str(args.faults), "--fault-kinds", "busy"] if args.faults else []
            procs.append(
                spawn(
                    # Every message is counted: the inbox keeps them all, not the newest 500.
                    cli(
                        "simulator",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--inbox-per-recipient",
                        "10000000",
                        *fault_args,
                    ),
                    work / f"sim-{path}.log",
                )
            )
            sims[path] = f"http://127.0.0.1:{port}"
            wait_http(f"{sims[path]}/admin/stats")
        relay_port = free_port()
        config = write_yaml(
            work / "relay.yaml",
            {
                "wecom": {"api_url": f"{sims['relay']}/cgi-bin/"},
                "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
                "receivers": [
                    {
                        "name": "default",
                        "targets": [{"app": "ops", "to_user": ["zhangsan"], "chart": args.chart}],
                    }
                ],
                "storage": {"path": str(work / "outbox.db")},
                **({"prometheus": {"url": sims["relay"]}} if args.chart else {}),
            },
        )
        procs.append(
            spawn(
                cli("serve", "--config", str(config), "--listen", f"127.0.0.1:{relay_port}"),
                work / "relay.log",
            )
        )
        wait_http(f"http://127.0.0.1:{relay_port}/healthz")
        am_native, native_url = alertmanager(
            work,
            "am-native",
            {
                "wechat_configs": [
                    {
                        "api_url": f"{sims['native']}/cgi-bin/",
                        "corp_id": CORP,
                        "api_secret": SECRET,
                        "agent_id": str(AGENT),
                        "to_user": "zhangsan",
                        "message_type": "text",
                        "send_resolved": False,
                    }
                ]
            },
        )
        am_relay, relay_url = alertmanager(
            work,
            "am-relay",
            {"webhook_configs": [{"url": f"http://127.0.0.1:{relay_port}/alerts/default", "max_alerts": 0}]},
        )
        procs += [am_native, am_relay]
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        alerts: list[dict[str, Any]] = [
            {
                "labels": {
                    "alertname": f"Storm{g:03d}",
                    "instance": f"host-{g}-{i}",
                    "severity": "critical",
                    "job": "node",
                },
                "annotations": {
                    "summary": f"实例 host-{g}-{i} 不可用",
                    "description": "up == 0 for 2 minutes",
                },
                "startsAt": started,
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
            }
            for g in range(args.groups)
            for i in range(args.per_group)
        ]
        names = [a["labels"]["instance"] for a in alerts]
        t0 = time.time()
        for url in (native_url, relay_url):
            httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=30).raise_for_status()
        last: dict[str, Any] = {}
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < 20 and time.time() - t0 < args.timeout:
            time.sleep(1)
            now = {p: visible_alerts(s, names) for p, s in sims.items()}
            if now != last:
                last, stable_since = now, time.monotonic()
        result: dict[str, Any] = {
            "machine": machine(),
            "groups": args.groups,
            "per_group": args.per_group,
            "alerts": len(names),
            "faults": args.faults,
            "chart": args.chart,
        }
        if args.chart:
            entries = httpx.get(f"{sims['relay']}/admin/inbox", timeout=10).json()["entries"]
            result["charts_seen"] = sum(1 for e in entries if e["image"])
            metrics = httpx.get(f"http://127.0.0.1:{relay_port}/metrics", timeout=10).text
            result["chart_outcomes"] = {
                line.split('outcome="')[1].split('"')[0]: float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("alertmanager_wecom_charts_total{")
            }
        for path, stats in last.items():
            at = stats.pop("last_delivery_at")
            stats["seconds_to_last_delivery"] = round(at - t0, 1) if at else None
            stats["alerts_visible_percent"] = round(100 * stats["alerts_visible"] / len(names), 1)
            result[path] = stats
        for path in ("native", "relay"):
            s = result[path]
            print(
                f"{path:<7} visible {s['alerts_visible']}/{len(names)} ({s['alerts_visible_percent']}%), "
                f"messages seen {s['messages_seen']}, dropped {s['messages_dropped']}, "
                f"last delivery after {s['seconds_to_last_delivery']}s"
            )
        print(dump(result))
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    main()
