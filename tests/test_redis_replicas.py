"""The outbox on Redis (issue 12) with real parts: a real redis-server (AOF, fsync always), the service as
real processes, the simulator applying WeCom's limits.

- Redis down: webhooks answer 503 and /readyz says why; Redis back (same AOF): nothing accepted is lost,
  the replicas recover by themselves.
- Three replicas behind one Redis, webhooks spread round-robin and each sent twice (two Alertmanagers):
  every alert visible, each notification delivered once, a storm to one person within WeCom's 30/min
  across the replicas (nothing dropped by the simulator's limits).
- Replicas killed with -9 at random moments (five times, started again each time): their targets are
  taken over after the lease (`storage.lease`), every accepted alert is delivered, at most one
  duplicate per kill.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.helpers import metric, pending, wait_until
from tests.redis_server import run_redis
from tests.servers import cli_process, free_port, simulator_process, wait_http

pytestmark = pytest.mark.e2e


def _config(tmp_path: Path, sim: str, redis_url: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "wecom": {"api_url": f"{sim}/cgi-bin/", "timeout_seconds": 5},
                "apps": {
                    "ops": {
                        "corp_id": SANDBOX_CORP_ID,
                        "agent_id": SANDBOX_AGENT_ID,
                        "secret": SANDBOX_SECRET,
                    }
                },
                "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
                "storage": {"backend": "redis", "url": redis_url, "key_prefix": "amw-test", "lease": "3s"},
                "delivery": {"retry_initial": "200ms", "retry_max": "1s", "poll_interval": "200ms"},
                "server": {"admin_allow_loopback": True},
            }
        ),
        encoding="utf-8",
    )
    return path


class Replicas:
    def __init__(self, stack: ExitStack, tmp_path: Path, sim: str, redis_url: str, count: int) -> None:
        self.stack, self.tmp_path, self.sim = stack, tmp_path, sim
        self.config = _config(tmp_path, sim, redis_url, "relay")
        self.urls: list[str] = []
        self.procs: list[Any] = []
        for index in range(count):
            self.start(index)

    def start(self, index: int) -> None:
        port = free_port()
        proc = self.stack.enter_context(
            cli_process(
                ["serve", "--config", str(self.config), "--listen", f"127.0.0.1:{port}"],
                self.tmp_path / f"relay-{index}-{time.monotonic_ns()}.log",
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        if index < len(self.urls):
            self.urls[index], self.procs[index] = url, proc
        else:
            self.urls.append(url)
            self.procs.append(proc)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    with simulator_process(tmp_path) as url:
        yield url


def _visible(sim: str) -> str:
    entries = httpx.get(f"{sim}/admin/inbox", params={"user": "zhangsan"}, timeout=10).json()["entries"]
    return "\n".join(e["visible"] for e in entries if e["dropped"] is None)


def _notification(i: int) -> dict[str, Any]:
    body = samples.node_down(1, cluster=f"c{i:03d}")
    body["groupKey"] = f'{{}}:{{cluster="c{i:03d}"}}'
    body["alerts"][0]["labels"]["instance"] = f"host-{i:03d}:9100"
    return body


def test_redis_down_means_503_and_nothing_accepted_is_lost(tmp_path: Path, sim: str) -> None:
    port = free_port()
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis", port))
        replicas = Replicas(stack, tmp_path, sim, redis_url, 1)
        relay = replicas.urls[0]
        assert httpx.post(f"{relay}/alerts/default", json=_notification(1), timeout=10).status_code == 200
        wait_until(lambda: "host-001" in _visible(sim), 20, "the first alert delivered")
        httpx_client = stack.enter_context(httpx.Client(timeout=10))
        _stop_redis(port)  # Redis goes away …
        down = httpx_client.post(f"{relay}/alerts/default", json=_notification(2))
        assert down.status_code == 503, down.text
        ready = httpx_client.get(f"{relay}/readyz")
        assert ready.status_code == 503 and "Redis" in ready.text
        assert (
            'alertmanager_wecom_outbox_backend{backend="redis"} 1.0'
            in httpx_client.get(f"{relay}/metrics").text
        )
        # … and comes back with its append-only file: Alertmanager's retry is taken.
        with run_redis(tmp_path / "redis", port):
            wait_until(lambda: httpx_client.get(f"{relay}/readyz").status_code == 200, 20, "ready again")
            assert httpx_client.post(f"{relay}/alerts/default", json=_notification(2)).status_code == 200
            wait_until(lambda: "host-002" in _visible(sim), 20, "the alert after the outage delivered")


def _stop_redis(port: int) -> None:
    import redis

    with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
        redis.Redis(host="127.0.0.1", port=port).shutdown(nosave=True)


def test_three_replicas_deliver_each_notification_once_within_wecom_limits(tmp_path: Path, sim: str) -> None:
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        replicas = Replicas(stack, tmp_path, sim, redis_url, 3)
        count = 60
        for i in range(count):
            body = _notification(i)
            # Round-robin, and each notification twice (a second Alertmanager, to another replica).
            for copy in (0, 1):
                url = replicas.urls[(i + copy) % 3]
                assert httpx.post(f"{url}/alerts/default", json=body, timeout=10).status_code == 200

        def all_visible() -> bool:
            text = _visible(sim)
            return all(f"host-{i:03d}:9100" in text for i in range(count))

        wait_until(all_visible, 90, "every alert in zhangsan's inbox")
        # Nothing is left to send (the replicas share the outbox): anything sent twice has arrived.
        wait_until(lambda: pending(replicas.urls[0]) == 0, 30, "an empty outbox")
        received = "alertmanager_wecom_notifications_received_total"
        assert sum(metric(url, received, status="accepted") for url in replicas.urls) == count
        assert sum(metric(url, received, status="duplicate") for url in replicas.urls) == count
        text = _visible(sim)
        for i in range(count):
            assert len(re.findall(rf"host-{i:03d}:9100", text)) == 1, f"host-{i:03d} shown more than once"
        stats = httpx.get(f"{sim}/admin/stats", timeout=10).json()
        assert stats["dropped"] == 0  # never over 30/min for zhangsan, across the three replicas
        assert stats["suppressed_duplicates"] == 0


def test_replicas_killed_at_random_moments_lose_nothing(tmp_path: Path, sim: str) -> None:
    """Five times a random replica is killed with -9 at a random moment while notifications arrive, and
    started again: every accepted alert is delivered, with at most one duplicate per kill."""
    chooser = random.Random(7)
    kills = 5
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        replicas = Replicas(stack, tmp_path, sim, redis_url, 2)
        accepted: list[int] = []
        number = 0
        for _ in range(kills):
            victim = chooser.randrange(2)
            for _ in range(8):
                body = _notification(number)
                url = replicas.urls[number % 2]
                if httpx.post(f"{url}/alerts/default", json=body, timeout=10).status_code == 200:
                    accepted.append(number)
                number += 1
            time.sleep(chooser.uniform(0.0, 0.5))
            replicas.procs[victim].send_signal(signal.SIGKILL)
            replicas.procs[victim].wait(10)
            replicas.start(victim)

        def all_visible() -> bool:
            text = _visible(sim)
            return all(f"host-{i:03d}:9100" in text for i in accepted)

        wait_until(all_visible, 120, "every accepted alert delivered after the kills")
        # Nothing is left to send (a killed replica's jobs too, once their lease ran out): a duplicate,
        # if any, has arrived.
        wait_until(lambda: pending(replicas.urls[0]) == 0, 30, "an empty outbox")
        text = _visible(sim)
        duplicates = sum(max(0, len(re.findall(rf"host-{i:03d}:9100", text)) - 1) for i in accepted)
        assert duplicates <= kills, f"{duplicates} duplicates for {kills} kills"
        assert len(accepted) == kills * 8  # a live replica took every webhook
        assert httpx.get(f"{sim}/admin/stats", timeout=10).json()["dropped"] == 0
