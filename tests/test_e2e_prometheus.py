"""A real Prometheus (Debian package `prometheus`) scrapes /metrics; the delivery counter is read back
through Prometheus's query API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from alertmanager_wecom import samples
from tests.helpers import wait_until
from tests.servers import free_port, wait_http
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def test_prometheus_scrapes_the_delivery_counter(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed: run ./test.sh (it installs the Debian package prometheus)")
    with Stack(tmp_path) as stack:
        for i in range(3):
            httpx.post(
                f"{stack.relay}/alerts/default", json=samples.node_down(1, cluster=f"p{i}"), timeout=10
            ).raise_for_status()
        port = free_port()
        relay_host = stack.relay.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "alertmanager-wecom", "static_configs": [{"targets": [relay_host]}]}
                    ],
                }
            ),
            encoding="utf-8",
        )
        with (tmp_path / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)

                def delivered() -> float | None:
                    reply = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/query",
                        timeout=5,
                        params={"query": 'sum(alertmanager_wecom_messages_sent_total{receiver="default"})'},
                    ).json()
                    result = reply["data"]["result"]
                    value = float(result[0]["value"][1]) if result else None
                    return value if value == 3.0 else None

                assert wait_until(delivered, 60, "the counter in Prometheus") == 3.0
            finally:
                proc.terminate()
                proc.wait(20)
