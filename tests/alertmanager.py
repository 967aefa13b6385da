"""Run the real Alertmanager binary (Debian package prometheus-alertmanager) for end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.servers import free_port, stop_process, wait_http


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        pytest.fail("Alertmanager is not installed: run ./test.sh (it installs prometheus-alertmanager)")
    return found


def webhook_config(url: str, group_by: list[str] | None = None, **route: Any) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "wecom",
            "group_by": group_by or ["alertname"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "1h",
            **route,
        },
        "receivers": [
            {"name": "wecom", "webhook_configs": [{"url": url, "send_resolved": True, "max_alerts": 0}]}
        ],
    }


@contextmanager
def run_alertmanager(
    tmp_path: Path, config: dict[str, Any], name: str = "am", port: int | None = None
) -> Iterator[str]:
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = port or free_port()
    log = (workdir / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary(),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", proc=proc)
        yield url
    finally:
        stop_process(proc)
        log.close()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post_alerts(am_url: str, alerts: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=10)
    response.raise_for_status()


def write_relay_config(
    tmp_path: Path, sim_url: str, delivery: dict[str, Any] | None = None, **target: Any
) -> Path:
    """A relay config file pointing at the simulator, with its outbox under tmp_path."""
    from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID

    config = {
        "wecom": {"api_url": f"{sim_url}/cgi-bin/", "timeout_seconds": 5},
        "apps": {
            "ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": "${AMW_E2E_SECRET}"}
        },
        "receivers": [
            {
                "name": "default",
                "targets": [
                    {
                        "app": "ops",
                        "to_user": ["zhangsan"],
                        "msgtype": "markdown",
                        "send_resolved": True,
                        **target,
                    }
                ],
            }
        ],
        "storage": {"path": str(tmp_path / "outbox.db")},
        "delivery": {
            "retry_initial": "200ms",
            "retry_max": "2s",
            "poll_interval": "200ms",
            **(delivery or {}),
        },
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def relay_env() -> dict[str, str]:
    from alertmanager_wecom.simulator.model import SANDBOX_SECRET

    return {"AMW_E2E_SECRET": SANDBOX_SECRET}
