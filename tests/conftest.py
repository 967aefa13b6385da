from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config
from tests.redis_server import run_redis
from tests.servers import serve_in_thread


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


@pytest.fixture
def browser() -> Iterator[Any]:
    """A chromium (Debian's, driven by Playwright) for one test. Not shared across tests: Playwright's
    sync API runs an event loop in this thread while it is open, and the asyncio tests that the same
    worker runs next need the thread to themselves."""
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_path

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server per test worker, for the contract suites (each test its own key prefix)."""
    with run_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
