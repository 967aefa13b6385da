"""Helpers shared by test modules (imported from here, never from conftest): relay configs around the
simulator, posting a webhook, waiting for a condition, where the samples are."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from alertmanager_wecom.cli import main
from alertmanager_wecom.config import Config
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
    SANDBOX_USERS,
)
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto


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


def app_entries(state: SimulatorState) -> dict[str, list[dict[str, Any]]]:
    """The sandbox members who got an app message, with what they got."""
    return {user: state.entries(user) for user in SANDBOX_USERS if state.entries(user)}


def dead_letters(tmp_path: Path) -> str:
    """`outbox list --state dead` of the outbox under `tmp_path` (raw_config's)."""
    result = CliRunner().invoke(
        main, ["outbox", "list", "--db", str(tmp_path / "outbox.db"), "--state", "dead"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def post(relay: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{relay}/alerts/default", json=payload, timeout=30)


SAMPLES = Path(__file__).resolve().parent / "samples"


def relay_config(
    api_url: str,
    storage_path: str | Path | None = None,
    delivery: dict[str, Any] | None = None,
    **target: object,
) -> Config:
    targets = {"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown", **target}
    raw: dict[str, Any] = {
        "wecom": {"api_url": api_url, "timeout_seconds": 5},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [{"name": "default", "targets": [targets]}],
        # Fast retries for tests; the limits stay WeCom's.
        "delivery": {
            "retry_initial": "100ms",
            "retry_max": "500ms",
            "poll_interval": "200ms",
            **(delivery or {}),
        },
    }
    if storage_path is not None:
        raw["storage"] = {"path": str(storage_path), "synchronous": "normal"}
    return parse_config(raw)


def wait_until(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def metric(relay: str, name: str, **labels: str) -> float:
    """The sum of the relay's `/metrics` samples called `name` (a counter's `…_total`) whose labels
    include `labels`: 0 when there is none yet."""
    text = httpx.get(f"{relay}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def pending(relay: str) -> int:
    """The jobs the relay has still to send (its /readyz): at 0, nothing more of them reaches WeCom."""
    return int(httpx.get(f"{relay}/readyz", timeout=10).json()["pending"])


def signed_event(
    crypto: CallbackCrypto, inner: str, timestamp: int, nonce: str = "1597212914"
) -> tuple[dict[str, str], bytes]:
    """What WeCom posts to a callback URL for the event `inner` (XML): the signed query and the body."""
    encrypted = crypto.encrypt(inner)
    query = {
        "msg_signature": crypto.signature(str(timestamp), nonce, encrypted),
        "timestamp": str(timestamp),
        "nonce": nonce,
    }
    body = f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID>1000002</AgentID></xml>"
    return query, body.encode()
