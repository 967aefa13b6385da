from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alertmanager_wecom.config import Config, parse_config
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config
from tests.servers import serve_in_thread

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim_state() -> SimulatorState:
    return SimulatorState(sandbox_settings())


@pytest.fixture
def simulator(sim_state: SimulatorState) -> Iterator[str]:
    """A simulator on a real loopback port; yields its base URL."""
    with serve_in_thread(create_simulator_app(sim_state)) as url:
        yield url


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


@pytest.fixture
def relay_with(simulator: str, tmp_path: Path) -> Iterator[Any]:
    servers: list[Any] = []

    def start(*targets: dict[str, Any], **kwargs: Any) -> str:
        cm = serve_in_thread(create_app(parse_config(raw_config(simulator, tmp_path, *targets, **kwargs))))
        servers.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(servers):
        cm.__exit__(None, None, None)
