"""Delivery you can trust, end to end with real processes: storms, kill -9, faults, outages, HA replicas."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alertmanager import now_iso, post_alerts, run_alertmanager, webhook_config
from tests.helpers import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def storm_alerts(groups: int, per_group: int, prefix: str = "host") -> list[dict[str, Any]]:
    started = now_iso()
    return [
        {
            "labels": {
                "alertname": f"Storm{g:03d}",
                "instance": f"{prefix}-{g}-{i}",
                "severity": "critical",
                "job": "node",
            },
            "annotations": {"summary": f"实例 {prefix}-{g}-{i} 不可用"},
            "startsAt": started,
        }
        for g in range(groups)
        for i in range(per_group)
    ]


def missing(text: str, names: list[str]) -> list[str]:
    return [n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


def webhook(instance_names: list[str], group: str) -> dict[str, Any]:
    """An Alertmanager webhook body with one alert per name."""
    from alertmanager_wecom.samples import fingerprint

    alerts = []
    for name in instance_names:
        labels = {"alertname": "KillTest", "instance": name, "severity": "warning", "group": group}
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{name} down"},
                "startsAt": "2026-11-28T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint(labels),
            }
        )
    return {
        "version": "4",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "status": "firing",
        "receiver": "wecom",
        "alerts": alerts,
        "groupLabels": {"group": group},
        "commonLabels": {"alertname": "KillTest", "group": group},
        "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "truncatedAlerts": 0,
    }


def test_storm_through_alertmanager_nothing_dropped(tmp_path: Path) -> None:
    """200 groups × 10 alerts to one person: no message over the per-member limit, all visible in 3 min."""
    with (
        Stack(tmp_path) as stack,
        run_alertmanager(tmp_path, webhook_config(f"{stack.relay}/alerts/default")) as am,
    ):
        alerts = storm_alerts(200, 10)
        names = [a["labels"]["instance"] for a in alerts]
        started = time.monotonic()
        post_alerts(am, alerts)
        wait_until(lambda: not missing(stack.visible_text(), names), 180, "every instance visible")
        elapsed = time.monotonic() - started
        stats = stack.sim_stats()
        assert stats["dropped"] == 0, stats
        assert stats["truncated"] == 0, stats
        assert stats["delivered"] <= 60  # a few dense messages, not 200
        print(f"storm: {len(names)} alerts visible after {elapsed:.1f}s in {stats['delivered']} messages")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it


def test_kill_minus_nine_during_a_storm_loses_nothing(tmp_path: Path) -> None:
    kills = 5
    rng = random.Random(1234)
    accepted: list[str] = []
    done = threading.Event()

    with Stack(tmp_path) as stack:

        def post_all() -> None:
            for n in range(120):
                names = [f"k{n}-{i}" for i in range(4)]
                body = webhook(names, f"g{n}")
                while True:  # as Alertmanager does: retry until a 2xx
                    try:
                        response = httpx.post(f"{stack.relay}/alerts/default", json=body, timeout=10)
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if response.status_code == 200:
                        accepted.extend(names)
                        break
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.03))
            done.set()

        poster = threading.Thread(target=post_all)
        poster.start()
        orphans: list[int] = []
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.5))
            orphans.extend(stack.relay_children())
            stack.kill_relay()
            stack.start_relay()
        poster.join(120)
        assert done.is_set()
        wait_until(lambda: not missing(stack.visible_text(), accepted), 150, "every accepted alert visible")
        # A duplicate: a visible message repeating an alert that an earlier visible message showed.
        seen: set[str] = set()
        duplicates = 0
        for entry in (e for e in stack.inbox() if e["dropped"] is None):
            shown = set(re.findall(r"(?<![\w-])k\d+-\d(?![\w-])", entry["visible"]))
            duplicates += bool(shown & seen)
            seen |= shown
        assert stack.relay_starts == kills + 1
        assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills"
        # The ingest writer of a killed relay does not outlive it (its stdin closes).
        assert orphans, "the relay had no ingest writer child"
        wait_until(lambda: not any(alive(pid) for pid in orphans), 10, "the killed relays' children gone")
        assert stack.sim_stats()["dropped"] == 0
        print(f"kill -9 ×{kills}: {len(accepted)} alerts accepted, all visible, {duplicates} duplicates")


def test_thirty_percent_faults_every_alert_delivered(tmp_path: Path) -> None:
    sim_args = [
        "--fault-rate",
        "0.3",
        "--fault-kinds",
        "busy,rate_limit,http_502,slow",
        "--slow-seconds",
        "1",
        "--fault-seed",
        "4",  # the very first call fails, so faults surely happen
    ]
    with (
        Stack(tmp_path, sim_args) as stack,
        run_alertmanager(tmp_path, webhook_config(f"{stack.relay}/alerts/default")) as am,
    ):
        alerts = storm_alerts(20, 5, prefix="faulty")
        names = [a["labels"]["instance"] for a in alerts]
        post_alerts(am, alerts)
        wait_until(lambda: not missing(stack.visible_text(), names), 120, "every alert delivered")
        stats = stack.sim_stats()
        assert sum(stats["faults_injected"].values()) > 0 and stats["dropped"] == 0


def test_wecom_unreachable_then_back_everything_delivered_as_digests(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.stop_sim()
        names: list[str] = []
        for n in range(40):
            batch = [f"out{n}-{i}" for i in range(3)]
            names.extend(batch)
            assert (
                httpx.post(
                    f"{stack.relay}/alerts/default", json=webhook(batch, f"o{n}"), timeout=10
                ).status_code
                == 200
            )
        # An outage: every attempt fails to connect and backs off; wait for the third failed attempt.
        wait_until(
            lambda: re.search(r"attempt=([3-9]|\d\d+) reason=network", stack.relay_log()),
            30,
            "failed attempts",
        )
        stack.start_sim()
        wait_until(lambda: not missing(stack.visible_text(), names), 60, "everything after the outage")
        stats = stack.sim_stats()
        assert stats["dropped"] == 0
        assert stats["delivered"] < 40  # coalesced, not one message per notification
        assert "【告警汇总】" in stack.visible_text()
        assert "reason=network" in stack.relay_log()


def test_two_unclustered_alertmanagers_deliver_each_notification_once(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        config = webhook_config(f"{stack.relay}/alerts/default")
        with (
            run_alertmanager(tmp_path, config, "am1") as am1,
            run_alertmanager(tmp_path, config, "am2") as am2,
        ):
            alerts = storm_alerts(3, 2, prefix="ha")
            post_alerts(am1, alerts)
            post_alerts(am2, alerts)
            names = [a["labels"]["instance"] for a in alerts]
            wait_until(lambda: not missing(stack.visible_text(), names), 30, "the three groups")
            # Both replicas have sent their three groups, and the relay has sent all it stored: nothing
            # more can reach the inbox.
            wait_until(
                lambda: stack.received("accepted") + stack.received("duplicate") >= 6, 30, "both replicas"
            )
            wait_until(lambda: stack.pending() == 0, 30, "the outbox sent")
            entries = [e for e in stack.inbox() if e["dropped"] is None]
            assert len(entries) == 3, [e["visible"][:60] for e in entries]
            assert (stack.received("accepted"), stack.received("duplicate")) == (3, 3)
            assert "duplicate notification" in stack.relay_log()


def test_permanent_errors_are_dead_letters_and_can_be_retried(tmp_path: Path) -> None:
    with Stack(tmp_path, ["--trusted-ip", "203.0.113.7"]) as stack:
        assert (
            httpx.post(f"{stack.relay}/alerts/default", json=webhook(["perm-1"], "p"), timeout=10).status_code
            == 200
        )
        wait_until(
            lambda: "dead" in stack.cli("outbox", "list", "--state", "dead").stdout.split("\n", 1)[-1],
            20,
            "a dead letter",
        )
        listing = stack.cli("outbox", "list", "--state", "dead").stdout
        assert "trusted_ip" in listing and "add 127.0.0.1 under" in listing
        sends = stack.sim_stats()["calls"]["message/send"]
        # Not retried: a later notification to the same target is sent (once) and dead-lettered too. The
        # dispatcher sends a target's jobs in order, a job waiting for its retry holding back those behind.
        assert (
            httpx.post(
                f"{stack.relay}/alerts/default", json=webhook(["perm-1b"], "p2"), timeout=10
            ).status_code
            == 200
        )
        wait_until(
            lambda: len(stack.cli("outbox", "list", "--state", "dead").stdout.strip().splitlines()[1:]) == 2,
            20,
            "the later notification's dead letter",
        )
        assert stack.pending() == 0
        assert stack.sim_stats()["calls"]["message/send"] == sends + 1
        # the operator adds the IP, then requeues the dead letters
        httpx.post(f"{stack.sim}/admin/trusted-ips", json={"agent_id": 1000002, "ips": None}, timeout=5)
        assert "requeued 2 job" in stack.cli("outbox", "retry", "--all-dead").stdout
        wait_until(
            lambda: not missing(stack.visible_text(), ["perm-1", "perm-1b"]), 20, "delivery after the fix"
        )
    with Stack(_sub(tmp_path, "b"), to_user=["ghost"]) as stack:
        assert (
            httpx.post(f"{stack.relay}/alerts/default", json=webhook(["perm-2"], "q"), timeout=10).status_code
            == 200
        )
        wait_until(lambda: "recipients" in stack.cli("outbox", "list", "--state", "dead").stdout, 20, "81013")
        job_id = stack.cli("outbox", "list", "--state", "dead").stdout.splitlines()[1].split()[0]
        shown = stack.cli("outbox", "show", job_id).stdout
        assert "81013" in shown and "perm-2" in shown


def _sub(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_sigterm_finishes_in_flight_keeps_the_rest_and_exits_zero(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        names: list[str] = []
        for n in range(60):
            batch = [f"term{n}-{i}" for i in range(2)]
            names.extend(batch)
            httpx.post(
                f"{stack.relay}/alerts/default", json=webhook(batch, f"t{n}"), timeout=10
            ).raise_for_status()
        assert stack.relay_proc is not None
        stack.relay_proc.send_signal(signal.SIGTERM)
        assert stack.relay_proc.wait(30) == 0
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{stack.relay}/alerts/default", json=webhook(["late"], "late"), timeout=2)
        stack.start_relay()
        wait_until(lambda: not missing(stack.visible_text(), names), 120, "everything after the restart")
        assert stack.sim_stats()["dropped"] == 0
