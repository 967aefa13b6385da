from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import Config
from alertmanager_wecom.relay import create_app
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_SECRET, Faults
from tests.conftest import SAMPLES, relay_config
from tests.servers import serve_in_thread


@pytest.fixture
def relay_for(simulator: str) -> Iterator[Any]:
    servers: list[Any] = []

    def start(config: Config | None = None, **target: Any) -> str:
        cm = serve_in_thread(create_app(config or relay_config(simulator + "/cgi-bin/", **target)))
        servers.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(servers):
        cm.__exit__(None, None, None)


@pytest.fixture
def relay(relay_for: Any) -> str:
    return str(relay_for())


def post(relay: str, payload: Any, receiver: str = "default", **kwargs: Any) -> httpx.Response:
    if isinstance(payload, (dict, list)):
        return httpx.post(f"{relay}/alerts/{receiver}", json=payload, timeout=30, **kwargs)
    return httpx.post(f"{relay}/alerts/{receiver}", content=payload, timeout=30, **kwargs)


def test_real_sample_is_delivered(relay: str, sim_state: SimulatorState) -> None:
    payload = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text())
    response = post(relay, payload)
    assert response.status_code == 200 and response.json() == {"status": "delivered", "messages": 1}
    [entry] = sim_state.entries("zhangsan")
    assert "instance=10.0.0.0:9100" in entry["visible"] and entry["msgtype"] == "markdown"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"status": "firing"}', 422, "alerts"),
        (b'{"status": "burning", "alerts": []}', 422, "status"),
        (b'{"status": "firing", "alerts": [{"status": "firing"}]}', 422, "startsAt"),
        (b"x" * 5_000_000, 413, "max_body_bytes"),
    ],
)
def test_bad_requests_get_4xx_with_reason(relay: str, body: bytes, status: int, words: str) -> None:
    response = post(relay, body)
    assert response.status_code == status
    assert words in json.dumps(response.json())


def test_unknown_receiver_404_lists_receivers(relay: str) -> None:
    response = post(relay, samples.node_down(1), receiver="nope")
    assert response.status_code == 404 and response.json()["receivers"] == ["default"]
    assert httpx.get(f"{relay}/alerts/default").status_code == 405


def test_grafana_payload_is_accepted(relay: str, sim_state: SimulatorState) -> None:
    payload = samples.node_down(1)
    payload.update(
        {"title": "[FIRING:1] NodeDown", "state": "alerting", "message": "m", "orgId": 1, "version": "1"}
    )
    payload["alerts"][0].update(
        {
            "values": {"A": 1},
            "dashboardURL": "http://grafana/d/x",
            "silenceURL": "http://grafana/silence",
            "panelURL": "",
        }
    )
    assert post(relay, payload).status_code == 200
    assert "NodeDown" in sim_state.entries("zhangsan")[0]["visible"]


def test_hundred_notifications_use_one_gettoken(relay: str, sim_state: SimulatorState) -> None:
    # This test is about tokens, not pacing (the dispatcher's job): lift the per-member limit.
    sim_state.settings.member_per_minute = 1000

    def one(i: int) -> int:
        return post(relay, samples.node_down(1, cluster=f"c{i}")).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(100)))
    assert codes == [200] * 100
    stats = sim_state.stats()
    assert stats["calls"]["gettoken"] == 1
    assert stats["delivered"] == 100


def test_token_revoked_mid_run_nothing_lost(relay: str, sim_state: SimulatorState) -> None:
    sim_state.settings.member_per_minute = 1000  # about tokens, not pacing
    for i in range(40):
        if i == 20:
            sim_state.revoke_tokens()
        assert post(relay, samples.node_down(1, cluster=f"c{i}")).status_code == 200
    entries = [e for e in sim_state.entries("zhangsan") if e["dropped"] is None]
    assert len(entries) == 40
    visible = "\n".join(e["visible"] for e in entries)
    assert all(f"cluster=c{i} " in visible for i in range(40))
    assert sim_state.stats()["calls"]["gettoken"] == 2


def test_transient_failure_answers_503_then_retry_delivers_without_duplicates(
    relay_for: Any, simulator: str, sim_state: SimulatorState
) -> None:
    relay = relay_for(relay_config(simulator + "/cgi-bin/", to_user=["zhangsan"]))
    sim_state.set_faults(Faults(rate=1.0, kinds=["busy"]))
    first = post(relay, samples.node_down(100))
    assert first.status_code == 503 and "system busy" in first.text
    sim_state.set_faults(Faults(rate=0.0))
    second = post(relay, samples.node_down(100))
    assert second.status_code == 200
    entries = sim_state.entries("zhangsan")
    assert len(entries) == second.json()["messages"]
    visible = "\n".join(e["visible"] for e in entries)
    assert all(f"instance=10.0.0.{i}:9100" in visible for i in range(100))


def test_faults_within_retry_budget_are_absorbed(
    relay_for: Any, simulator: str, sim_state: SimulatorState
) -> None:
    config = relay_config(simulator + "/cgi-bin/")
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"retry_budget_seconds": 20})}
    )
    relay = relay_for(config)
    sim_state.set_faults(Faults(rate=0.3, kinds=["busy", "rate_limit", "http_502"], seed=7))
    codes = [post(relay, samples.node_down(3, cluster=f"c{i}")).status_code for i in range(15)]
    assert codes == [200] * 15
    assert sum(sim_state.stats()["errors"].values()) > 0  # faults really happened
    assert len([e for e in sim_state.entries("zhangsan") if e["dropped"] is None]) == 15


def test_permanent_failure_answers_424_with_fix(
    relay: str, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
    with caplog.at_level(logging.INFO):
        response = post(relay, samples.node_down(2))
    assert response.status_code == 424
    assert "add 127.0.0.1 under" in response.text
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("60020" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in errors)


def test_partial_failure_is_logged_with_names(
    relay_for: Any, caplog: pytest.LogCaptureFixture, sim_state: SimulatorState
) -> None:
    relay = relay_for(to_user=["zhangsan", "ghost"])
    with caplog.at_level(logging.INFO):
        assert post(relay, samples.node_down(1)).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ghost" in w for w in warnings)


def test_send_resolved_false_skips_resolved(relay_for: Any, sim_state: SimulatorState) -> None:
    relay = relay_for(send_resolved=False)
    response = post(relay, samples.node_down(2, status="resolved"))
    assert response.status_code == 200 and response.json()["messages"] == 0
    assert sim_state.entries() == []


def test_no_secret_in_logs_or_error_bodies(
    relay_for: Any,
    simulator: str,
    sim_state: SimulatorState,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay = relay_for()
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        bodies.append(post(relay, samples.node_down(3)).text)
        sim_state.revoke_tokens()
        bodies.append(post(relay, samples.node_down(2)).text)
        sim_state.set_faults(Faults(rate=1.0, kinds=["http_502"]))
        bodies.append(post(relay, samples.node_down(1, cluster="x")).text)
        sim_state.set_faults(Faults(rate=0.0))
        sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
        bodies.append(post(relay, samples.node_down(1, cluster="y")).text)
        # a relay whose WeCom is unreachable: httpx errors quote the URL with the token
        dead = relay_for(relay_config("http://127.0.0.1:9/cgi-bin/"))
        bodies.append(post(dead, samples.node_down(1)).text)
    tokens = list(sim_state.issued_tokens)
    everything = "\n".join(bodies) + caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    everything += capsys.readouterr().err
    assert "503" in bodies[2] or "retry" in bodies[2]
    assert SANDBOX_SECRET not in everything
    assert len(tokens) >= 2  # the revocation made the relay fetch a second token
    for token in tokens:
        assert token not in everything
