"""Escalation across replicas (real processes, one real redis-server, each replica with its own
`storage.path` as pods have): the incident is opened once whichever replica takes the group's
notifications, and each step fires exactly once, also when the replica that stored it is killed -9
while it waits."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.helpers import wait_until
from tests.servers import cli_process, free_port, simulator_process, wait_http


def _config(tmp_path: Path, sim: str, redis_url: str, prefix: str, index: int) -> Path:
    path = tmp_path / f"relay-{index}.yaml"
    config = {
        "wecom": {"api_url": f"{sim}/cgi-bin/", "timeout_seconds": 5},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [
            {"name": "default", "escalation": "sre", "targets": [{"app": "ops", "to_user": ["oncall:sre"]}]}
        ],
        "oncall": {
            "schedules": {"sre": {"members": ["zhangsan"], "start": "2026-01-01"}},
            "escalations": {
                "sre": {
                    "steps": [
                        {
                            "after": "4s",
                            "targets": [{"app": "ops", "to_user": ["wangwu"], "msgtype": "text"}],
                        },
                        {"after": "8s", "targets": [{"app": "ops", "to_user": ["lisi"], "msgtype": "text"}]},
                    ]
                }
            },
        },
        "storage": {
            "backend": "redis",
            "url": redis_url,
            "key_prefix": prefix,
            "lease": "2s",
            "path": str(tmp_path / f"replica-{index}" / "outbox.db"),
        },
        "delivery": {"retry_initial": "200ms", "retry_max": "1s", "poll_interval": "200ms"},
        "server": {"admin_allow_loopback": True},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _replica(stack: ExitStack, tmp_path: Path, config: Path, index: int) -> tuple[str, Any]:
    port = free_port()
    proc = stack.enter_context(
        cli_process(
            ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            tmp_path / f"relay-{index}.log",
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc)
    return url, proc


def inbox(sim: str, user: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/admin/inbox", params={"user": user}, timeout=10).json()["entries"])


@contextmanager
def _replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    prefix = f"oc{uuid.uuid4().hex[:10]}"
    with ExitStack() as stack:
        sim = stack.enter_context(simulator_process(tmp_path))
        replicas = [
            _replica(stack, tmp_path, _config(tmp_path, sim, redis_url, prefix, index), index)
            for index in (0, 1)
        ]
        yield sim, replicas


def test_two_replicas_open_one_incident_and_fire_each_step_once(tmp_path: Path, redis_url: str) -> None:
    with _replicas(tmp_path, redis_url) as (sim, replicas):
        (first, first_proc), (second, _) = replicas
        payload = samples.node_down(2)
        later = samples.node_down(3)  # the group's next notification (one more alert), to the other replica
        # Two Alertmanagers (the same notification to both replicas), then the next one to the other.
        for url, body in ((first, payload), (second, payload), (second, later)):
            assert httpx.post(f"{url}/alerts/default", json=body, timeout=10).status_code == 200
        wait_until(lambda: inbox(sim, "zhangsan"), what="the first notification")
        # The replica that took the group's first notification dies while its steps wait.
        first_proc.send_signal(signal.SIGKILL)
        first_proc.wait()
        wait_until(lambda: inbox(sim, "lisi"), timeout=60, what="the second step, from the surviving replica")
        incidents = httpx.get(f"{second}/api/incidents", timeout=10).json()["incidents"]
        assert len(incidents) == 1
        kinds = [e["kind"] for e in incidents[0]["events"]]
        assert kinds.count("escalated") == 2 and kinds.count("opened") == 1
        wait_until(lambda: int(httpx.get(f"{second}/readyz", timeout=10).json()["pending"]) == 0, what="done")
        assert len(inbox(sim, "wangwu")) == 1 and len(inbox(sim, "lisi")) == 1
