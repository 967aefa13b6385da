from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alertmanager_wecom.config import Config, parse_config
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
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


def relay_config(api_url: str, **target: object) -> Config:
    targets = {"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown", **target}
    return parse_config(
        {
            "wecom": {"api_url": api_url, "timeout_seconds": 5},
            "apps": {
                "ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}
            },
            "receivers": [{"name": "default", "targets": [targets]}],
            "server": {"retry_budget_seconds": 2},
        }
    )
