"""End to end: the real Alertmanager → this service (a real process) → the simulator (a real process)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom.simulator.model import SANDBOX_SECRET
from tests.alertmanager import (
    now_iso,
    post_alerts,
    relay_env,
    run_alertmanager,
    webhook_config,
    write_relay_config,
)
from tests.helpers import wait_until
from tests.servers import cli_process, free_port, wait_http

pytestmark = pytest.mark.e2e


def inbox(sim: str, user: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/admin/inbox", params={"user": user}, timeout=5).json()["entries"])


def test_hundred_alert_group_through_real_alertmanager(tmp_path: Path) -> None:
    sim_port, relay_port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    relay = f"http://127.0.0.1:{relay_port}"
    config = write_relay_config(tmp_path, sim)
    env = relay_env()
    with (
        cli_process(["simulator", "--listen", f"127.0.0.1:{sim_port}"], tmp_path / "sim.log") as sim_proc,
        cli_process(
            ["serve", "--config", str(config), "--listen", f"127.0.0.1:{relay_port}"],
            tmp_path / "relay.log",
            env,
        ) as relay_proc,
    ):
        wait_http(f"{sim}/admin/stats", proc=sim_proc)
        wait_http(f"{relay}/healthz", proc=relay_proc)
        with run_alertmanager(tmp_path, webhook_config(f"{relay}/alerts/default")) as am:
            started = now_iso()
            alerts = [
                {
                    "labels": {
                        "alertname": "NodeDown",
                        "instance": f"10.1.0.{i}:9100",
                        "job": "node",
                        "severity": "critical",
                        "cluster": "prod-bj",
                    },
                    "annotations": {"summary": f"节点 10.1.0.{i} 宕机"},
                    "startsAt": started,
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
                }
                for i in range(100)
            ]
            post_alerts(am, alerts)

            def all_instances_visible() -> list[dict[str, Any]] | None:
                entries = [e for e in inbox(sim, "zhangsan") if e["dropped"] is None]
                text = "\n".join(e["visible"] for e in entries)
                return (
                    entries if all(re.search(rf"\b10\.1\.0\.{i}:9100\b", text) for i in range(100)) else None
                )

            entries = wait_until(all_instances_visible, 60, "all 100 instances in zhangsan's inbox")
            assert all(e["sent_bytes"] <= 2048 and not e["truncated"] for e in entries)
            assert len(entries) <= 5  # one notification, split on alert boundaries within the cap

            ended = now_iso()
            post_alerts(am, [{**a, "endsAt": ended} for a in alerts])

            def resolved_message() -> list[dict[str, Any]]:
                return [
                    e for e in inbox(sim, "zhangsan") if "已恢复" in e["visible"] and e["dropped"] is None
                ]

            resolved = wait_until(resolved_message, 60, "a resolved message")
            text = "\n".join(e["visible"] for e in resolved)
            assert "10.1.0.0:9100" in text
            assert all(e["sent_bytes"] <= 2048 for e in resolved)
    relay_log = (tmp_path / "relay.log").read_text(encoding="utf-8")
    assert SANDBOX_SECRET not in relay_log
    assert "delivered receiver=default" in relay_log
