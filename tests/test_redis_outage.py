"""A Redis outage seen from the relay, with a real redis-server frozen (SIGSTOP) and then stopped:
/readyz answers 503 with the reason within 2 s (not after Redis's 5 s socket timeout), webhooks get 503,
and the log says what is wrong once (then once a minute), with no traceback, and when it is over."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import Faults
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config, wait_until
from tests.redis_server import run_redis
from tests.servers import free_port, serve_in_thread

READY_WITHIN = 2.0


@pytest.fixture
def outage_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING)
    yield caplog


def timed_readyz(client: httpx.Client, base: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = client.get(f"{base}/readyz")
    return time.monotonic() - started, answer


def test_readiness_and_the_log_during_a_redis_outage(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, outage_log: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    with run_redis(tmp_path / "redis", port) as url:
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
        raw["storage"] = {"backend": "redis", "url": url, "key_prefix": "outage"}
        with serve_in_thread(create_app(parse_config(raw))) as base, httpx.Client(timeout=30) as client:
            assert client.post(f"{base}/alerts/default", json=samples.node_down(1)).status_code == 200
            wait_until(lambda: sim_state.entries("zhangsan"), 20, "delivery")
            assert client.get(f"{base}/readyz").status_code == 200
            outage_log.clear()

            # A message in flight when Redis freezes: its send returns, and recording it fails.
            sim_state.set_faults(Faults(rate=1.0, kinds=["slow"], slow_seconds=1.5))
            assert (
                client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="a")).status_code
                == 200
            )
            time.sleep(0.5)
            os.kill(pid, signal.SIGSTOP)  # frozen: connections stay open, nothing is answered
            sim_state.set_faults(Faults())
            try:
                for _ in range(4):
                    seconds, answer = timed_readyz(client, base)
                    assert answer.status_code == 503 and seconds < READY_WITHIN, (seconds, answer.text)
                    assert "Redis did not answer a test write within" in answer.text
                refused = client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="b"))
                assert refused.status_code == 503 and "Redis" in refused.text
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_until(lambda: client.get(f"{base}/readyz").status_code == 200, 20, "ready again")

            with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
                redis.Redis.from_url(url).shutdown(nosave=True)  # stopped: connections are refused
            wait_until(lambda: client.get(f"{base}/readyz").status_code == 503, 10, "Redis seen gone")
            for i in range(10):
                seconds, answer = timed_readyz(client, base)
                assert answer.status_code == 503 and seconds < READY_WITHIN, (seconds, answer.text)
                assert "Redis: ConnectionError" in answer.text
                gone = client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster=f"c{i}"))
                assert gone.status_code == 503
            time.sleep(2)  # the dispatcher's rounds fail too, a few times
            with run_redis(tmp_path / "redis", port):  # back, with its append-only file
                wait_until(lambda: client.get(f"{base}/readyz").status_code == 200, 20, "ready again")
                assert (
                    client.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="d")).status_code
                    == 200
                )
                records = list(outage_log.records)  # not what the relay's shutdown says after Redis stops

    lines = [(r.levelname, r.getMessage()) for r in records]
    assert not [r for r in records if r.exc_info or "Traceback" in r.getMessage()], lines
    # Two outages, each said once when it began (and why) and once when it ended, however many calls
    # failed meanwhile: webhooks, readiness probes, the dispatcher's rounds.
    assert [(level, message.split(":")[0].split(" after")[0]) for level, message in lines] == [
        ("ERROR", "Redis unavailable"),
        ("WARNING", "Redis available again"),
        ("ERROR", "Redis unavailable"),
        ("WARNING", "Redis available again"),
    ], lines
    assert "did not answer a test write" in lines[0][1] and "ConnectionError" in lines[2][1]
