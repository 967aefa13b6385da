"""Helpers shared by test modules: a relay config around the simulator, posting a webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
)


def raw_config(
    simulator: str, tmp_path: Path, *targets: dict[str, Any], robot_key: str = SANDBOX_ROBOT_KEY
) -> dict[str, Any]:
    return {
        "wecom": {"api_url": simulator + "/cgi-bin/", "timeout_seconds": 5},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "robots": {"sre": {"key": robot_key}},
        "receivers": [{"name": "default", "targets": list(targets)}],
        "storage": {"path": str(tmp_path / "outbox.db"), "synchronous": "normal"},
        "delivery": {"retry_initial": "100ms", "retry_max": "500ms", "poll_interval": "200ms"},
    }


def post(relay: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{relay}/alerts/default", json=payload, timeout=30)
