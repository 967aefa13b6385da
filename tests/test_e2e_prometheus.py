"""A real Prometheus (Debian package `prometheus`) scrapes /metrics; the delivery counter is read back
through Prometheus's query API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from tests.helpers import wait_until
from tests.prometheus import run_prometheus
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def test_prometheus_scrapes_the_delivery_counter(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        for i in range(3):
            httpx.post(
                f"{stack.relay}/alerts/default", json=samples.node_down(1, cluster=f"p{i}"), timeout=10
            ).raise_for_status()
        with run_prometheus(tmp_path, stack.relay.removeprefix("http://")) as prometheus:

            def delivered() -> float | None:
                reply = httpx.get(
                    f"{prometheus}/api/v1/query",
                    timeout=5,
                    params={"query": 'sum(alertmanager_wecom_messages_sent_total{receiver="default"})'},
                ).json()
                result = reply["data"]["result"]
                value = float(result[0]["value"][1]) if result else None
                return value if value == 3.0 else None

            assert wait_until(delivered, 60, "the counter in Prometheus") == 3.0
