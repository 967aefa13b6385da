"""The simulator's admin endpoints (simulator/admin_guard.py), over real HTTP, standalone and mounted under
/sim in the sandbox: JSON bodies only (415), and no request from a page of another origin (403): what a
site open in the same browser could otherwise send (a form resetting the inbox, a fault injected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount

from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.servers import free_port, serve_in_thread


def _message(state: SimulatorState) -> None:
    tok = state.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})["access_token"]
    body = b'{"touser": "zhangsan", "agentid": %d, "msgtype": "text", "text": {"content": "hi"}}'
    assert state.message_send({"access_token": tok}, body % SANDBOX_AGENT_ID, "127.0.0.1")["errcode"] == 0


@pytest.fixture
def standalone() -> Iterator[tuple[str, SimulatorState]]:
    state = SimulatorState(sandbox_settings())
    with serve_in_thread(create_simulator_app(state)) as url:
        yield url, state


def test_a_post_that_is_not_json_is_refused(standalone: tuple[str, SimulatorState]) -> None:
    url, state = standalone
    _message(state)
    refused = [
        httpx.post(f"{url}/admin/reset", data={"x": "1"}),  # what an HTML form sends
        httpx.post(f"{url}/admin/reset", content=b"{}", headers={"Content-Type": "text/plain"}),
        httpx.post(f"{url}/admin/reset"),  # no body, no type
        httpx.post(f"{url}/admin/faults", content=b'{"rate": 1}'),
    ]
    assert [r.status_code for r in refused] == [415] * 4
    assert "application/json" in refused[0].json()["error"]
    assert len(state.inbox) == 1 and state.settings.faults.rate == 0
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    assert httpx.post(f"{url}/admin/reset", content=b"{}", headers=json_type).status_code == 200
    assert state.inbox == []


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1:1", "http://localhost:{port}", "http://[::1"],
)
def test_a_foreign_origin_is_refused(standalone: tuple[str, SimulatorState], origin: str) -> None:
    url, state = standalone
    _message(state)
    foreign = {"Origin": origin.format(port=url.rsplit(":", 1)[1])}
    answers = [
        httpx.post(f"{url}/admin/reset", json={}, headers=foreign),
        httpx.post(f"{url}/admin/faults", json={"rate": 1.0, "kinds": ["busy"]}, headers=foreign),
        httpx.get(f"{url}/admin/inbox", headers=foreign),
    ]
    assert [a.status_code for a in answers] == [403] * 3
    assert "Origin" in answers[0].json()["error"]
    assert len(state.inbox) == 1 and state.settings.faults.rate == 0


def test_its_own_origin_and_scripts_without_one_are_served(standalone: tuple[str, SimulatorState]) -> None:
    url, state = standalone
    _message(state)
    own = {"Origin": url}
    assert httpx.get(f"{url}/admin/inbox", headers=own).json()["entries"][0]["recipient"] == "zhangsan"
    faults = httpx.post(f"{url}/admin/faults", json={"rate": 0.5, "kinds": ["busy"]}, headers=own)
    assert faults.status_code == 200 and state.settings.faults.rate == 0.5
    assert httpx.post(f"{url}/admin/faults", json={"rate": 0}).status_code == 200  # curl, scripts
    assert httpx.post(f"{url}/admin/reset", json={}, headers=own).status_code == 200
    assert state.inbox == []


def test_the_sandbox_guards_sim_admin_too(tmp_path: Path) -> None:
    from alertmanager_wecom.sandbox import SIMULATOR_PREFIX, sandbox_callbacks, sandbox_config
    from alertmanager_wecom.web.app import create_app

    port = free_port()
    state = SimulatorState(sandbox_settings())
    simulator = create_simulator_app(state, sandbox_callbacks("127.0.0.1", port))
    app = create_app(
        sandbox_config("127.0.0.1", port, str(tmp_path)),
        extra_routes=[Mount(SIMULATOR_PREFIX, app=simulator)],
    )
    _message(state)
    with serve_in_thread(app, port=port) as relay:
        admin = f"{relay}{SIMULATOR_PREFIX}/admin"
        foreign = httpx.post(f"{admin}/reset", json={}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "simulator's admin" in foreign.json()["error"]
        form = httpx.post(f"{admin}/reset", data={"x": "1"})
        assert form.status_code == 415 and "application/json" in form.json()["error"]
        assert len(state.inbox) == 1
        assert httpx.post(f"{admin}/reset", json={}, headers={"Origin": relay}).status_code == 200
        assert state.inbox == []
