"""The sandbox's on-call demo, as a new user sees it (`serve` without a config, a real process): an alert
group nobody acknowledges reaches the person on call a minute later, in the inbox and on the robot with
an @; 认领 on zhaoliu's card stops another group's escalation. Real time: the policy is one minute."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from alertmanager_wecom import samples
from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.schedule import on_call
from alertmanager_wecom.sandbox import sandbox_config
from tests.helpers import wait_until
from tests.servers import cli_process, free_port, wait_http


def inbox(base: str, user: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{base}/sim/admin/inbox", params={"user": user}, timeout=10).json()["entries"])


def stopped(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith('alertmanager_wecom_escalations_stopped_total{policy="sre",why="acknowledged"}'):
            return float(line.split()[-1])
    return 0.0


def test_the_sandbox_escalates_what_nobody_acknowledges_and_stops_on_a_card(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    schedule = sandbox_config("127.0.0.1", port, str(tmp_path)).oncall.schedules["sre"]
    assert isinstance(schedule, Schedule)
    with cli_process(["serve", "--listen", f"127.0.0.1:{port}"], tmp_path / "sandbox.log") as proc:
        wait_http(f"{base}/healthz", timeout=60, proc=proc)
        ignored = samples.node_down(2, receiver="demo")
        pressed = samples.node_down(1, receiver="demo", cluster="prod-sh")
        pressed["groupKey"] = '{}:{alertname="NodeDown", cluster="prod-sh"}'  # group_by: [alertname, cluster]
        for payload in (ignored, pressed):
            assert httpx.post(f"{base}/alerts/demo", json=payload, timeout=30).status_code == 200
        sent_at = time.time()
        cards = wait_until(
            lambda: len(found := [e for e in inbox(base, "zhaoliu") if e["card"]]) == 2 and found,
            60,
            "two cards",
        )
        # The lone prod-sh alert's card (the other group has 2 alerts: "[告警:2]").
        card = next(e["card"] for e in cards if e["card"]["main_title"]["title"] == "[告警] NodeDown")
        press = {"agent_id": 1000002, "userid": "zhaoliu", "event_key": "ack", "task_id": card["task_id"]}
        assert httpx.post(f"{base}/sim/admin/click", json=press, timeout=30).json()["sent"]
        # A minute on, the step of the group nobody acknowledged reaches whoever is on call then.
        shift = on_call(schedule, sent_at + 60)
        assert shift is not None
        steps = wait_until(
            lambda: [e for e in inbox(base, shift.user) if "升级至第 2 级" in e["visible"]], 120, "the step"
        )
        assert len(steps) == 1 and "prod-bj" in steps[0]["visible"]
        wait_until(
            lambda: stopped(base) == 2,
            60,
            "the acknowledged group's step (to the app and the robot), not taken",
        )
        robot = [e for e in inbox(base, "robot:sre") if "升级至第 2 级" in e["visible"]]
        assert len(robot) == 1 and robot[0]["mentioned"] == [shift.user]
