from __future__ import annotations

import base64
import gc
import json
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import Config
from alertmanager_wecom.ingest.payload import LARGE_BODY
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_SECRET, Faults
from alertmanager_wecom.web.app import create_app
from tests.helpers import SAMPLES, raw_config, relay_config, wait_until
from tests.servers import serve_in_thread


@pytest.fixture
def relay_for(simulator: str, tmp_path: Path) -> Iterator[Any]:
    servers: list[Any] = []

    def start(config: Config | None = None, **target: Any) -> str:
        delivery = target.pop("delivery", None)
        config = config or relay_config(
            simulator + "/cgi-bin/", tmp_path / f"outbox{len(servers)}.db", delivery, **target
        )
        cm = serve_in_thread(create_app(config))
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


def visible(state: SimulatorState, user: str = "zhangsan") -> str:
    return "\n".join(e["visible"] for e in state.entries(user) if e["dropped"] is None)


def test_real_sample_is_accepted_then_delivered(relay: str, sim_state: SimulatorState) -> None:
    payload = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text())
    response = post(relay, payload)
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    wait_until(lambda: sim_state.entries("zhangsan"), what="delivery")
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
        (
            b'{"status": "firing", "alerts": [{"status": "firing", "startsAt": "2026-02-30T09:00:00Z"}]}',
            422,
            "startsAt",
        ),
        (b'{"status": "firing", "alerts": [{"status": "firing", "startsAt": "yesterday"}]}', 422, "startsAt"),
        (b"x" * 5_000_000, 413, "max_body_bytes"),
    ],
)
def test_bad_requests_get_4xx_with_reason(relay: str, body: bytes, status: int, words: str) -> None:
    response = post(relay, body)
    assert response.status_code == status
    assert words in json.dumps(response.json())


def test_the_start_up_heap_is_frozen_while_serving(relay: str) -> None:
    # Full collections would otherwise walk it every few seconds under load (see relay.freeze_heap).
    assert httpx.get(f"{relay}/healthz").status_code == 200
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] >= 10_000  # young collections: not 190 times a second under load


def test_unknown_receiver_404_lists_receivers(relay: str) -> None:
    response = post(relay, samples.node_down(1), receiver="nope")
    assert response.status_code == 404 and response.json()["receivers"] == ["default"]
    assert httpx.get(f"{relay}/alerts/default").status_code == 405


def test_an_unknown_receiver_is_named_only_to_a_caller_with_credentials(
    relay_for: Any, simulator: str, tmp_path: Path
) -> None:
    """With webhook auth configured, a stranger's 404 says no more than that: the receivers' names are
    config. A caller with the server's credentials, or any receiver's, is one of our Alertmanagers."""
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["server"] = {"auth": {"bearer_token": "server-token-3e1f"}}
    raw["receivers"].append(
        {
            "name": "team-payments",
            "targets": [{"app": "ops", "to_user": ["lisi"]}],
            "auth": {"basic_auth": {"username": "am", "password": "team-pass-77"}},
        }
    )
    relay = relay_for(parse_config(raw))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YW06bm9wZQ=="}):
        stranger = post(relay, samples.node_down(1), receiver="nope", headers=headers)
        assert stranger.status_code == 404 and stranger.json() == {"error": "no such receiver"}
        assert "team-payments" not in stranger.text and "default" not in stranger.text
    for headers in (
        {"Authorization": "Bearer server-token-3e1f"},
        {"Authorization": "Basic " + base64.b64encode(b"am:team-pass-77").decode()},
    ):
        known = post(relay, samples.node_down(1), receiver="nope", headers=headers)
        assert known.status_code == 404 and known.json()["receivers"] == ["default", "team-payments"]


def test_health_and_readiness(relay: str) -> None:
    assert httpx.get(f"{relay}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{relay}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


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
    wait_until(lambda: "NodeDown" in visible(sim_state), what="delivery")


def test_hundred_notifications_one_gettoken_none_dropped(relay: str, sim_state: SimulatorState) -> None:
    def one(i: int) -> int:
        return post(relay, samples.node_down(1, cluster=f"c{i}")).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(100)))
    assert codes == [200] * 100
    # More than 30/min for one person: the backlog is coalesced into digests, nothing is dropped.
    wait_until(lambda: all(f"cluster=c{i} " in visible(sim_state) for i in range(100)), 30, "all 100")
    stats = sim_state.stats()
    assert stats["calls"]["gettoken"] == 1
    assert stats["dropped"] == 0
    assert stats["delivered"] <= 30
    assert "【告警汇总】" in visible(sim_state)


def test_a_backlog_longer_than_a_page_is_one_digest(
    relay: str, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    def one(i: int) -> int:
        return post(relay, samples.node_down(1, cluster=f"c{i}")).status_code

    with caplog.at_level(logging.INFO), ThreadPoolExecutor(16) as pool:
        assert list(pool.map(one, range(250))) == [200] * 250
        wait_until(lambda: all(f"cluster=c{i} " in visible(sim_state) for i in range(250)), 60, "all 250")
    merged = [
        int(match.group(1))
        for record in caplog.records
        if (match := re.search(r"coalesced (\d+) notifications", record.getMessage()))
    ]
    # The backlog is read 100 jobs at a time; the digest still takes in all of it.
    assert max(merged) > 100
    assert sim_state.stats()["dropped"] == 0


def test_token_revoked_mid_run_nothing_lost(relay: str, sim_state: SimulatorState) -> None:
    for i in range(20):
        assert post(relay, samples.node_down(1, cluster=f"c{i}")).status_code == 200
    wait_until(lambda: all(f"cluster=c{i} " in visible(sim_state) for i in range(20)), 30, "first 20")
    sim_state.revoke_tokens()
    for i in range(20, 30):
        assert post(relay, samples.node_down(1, cluster=f"c{i}")).status_code == 200
    wait_until(lambda: all(f"cluster=c{i} " in visible(sim_state) for i in range(30)), 30, "all 30")
    assert sim_state.stats()["calls"]["gettoken"] == 2
    assert sim_state.stats()["errors"].get("40014") == 1


def test_transient_failures_are_retried_until_delivered(
    relay: str, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    sim_state.set_faults(Faults(rate=1.0, kinds=["busy"]))
    with caplog.at_level(logging.INFO):
        assert post(relay, samples.node_down(100)).status_code == 200
        wait_until(lambda: sim_state.stats()["errors"].get("-1", 0) >= 3, 20, "three failed attempts")
        sim_state.set_faults(Faults(rate=0.0))
        wait_until(lambda: all(f"10.0.0.{i}:9100" in visible(sim_state) for i in range(100)), 20, "delivery")
    assert any("retrying in" in r.getMessage() and "reason=busy" in r.getMessage() for r in caplog.records)


def test_thirty_percent_faults_every_alert_delivered(relay: str, sim_state: SimulatorState) -> None:
    sim_state.set_faults(Faults(rate=0.3, kinds=["busy", "rate_limit", "http_502"], seed=7))
    for i in range(15):
        assert post(relay, samples.node_down(3, cluster=f"c{i}")).status_code == 200
    wait_until(lambda: all(f"cluster=c{i} " in visible(sim_state) for i in range(15)), 40, "all 15")
    assert sum(sim_state.stats()["errors"].values()) > 0  # faults really happened
    assert sim_state.stats()["dropped"] == 0


def test_permanent_failure_is_a_dead_letter_with_the_fix(
    relay: str, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
    with caplog.at_level(logging.INFO):
        assert post(relay, samples.node_down(2)).status_code == 200
        wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), 10, "the error log")
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "60020" in error and "add 127.0.0.1 under" in error and "dead letter" in error
    ready = httpx.get(f"{relay}/readyz").json()
    assert ready["dead"] == 1 and ready["pending"] == 0
    assert sim_state.stats()["calls"]["message/send"] == 1
    # Not retried: a later notification to the same target is sent once and dead-lettered too. The
    # dispatcher sends a target's jobs in order, a job waiting for its retry holding back those behind.
    assert post(relay, samples.node_down(2, cluster="later")).status_code == 200
    wait_until(lambda: httpx.get(f"{relay}/readyz").json()["dead"] == 2, 10, "the later dead letter")
    assert httpx.get(f"{relay}/readyz").json()["pending"] == 0
    assert sim_state.stats()["calls"]["message/send"] == 2


def test_partial_failure_is_logged_with_names(
    relay_for: Any, caplog: pytest.LogCaptureFixture, sim_state: SimulatorState
) -> None:
    relay = relay_for(to_user=["zhangsan", "ghost"])
    with caplog.at_level(logging.INFO):
        assert post(relay, samples.node_down(1)).status_code == 200
        wait_until(
            lambda: any("ghost" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING),
            10,
            "the warning",
        )


def test_send_resolved_false_skips_resolved(relay_for: Any, sim_state: SimulatorState) -> None:
    relay = relay_for(send_resolved=False)
    assert post(relay, samples.node_down(2, status="resolved")).status_code == 200
    assert post(relay, samples.node_down(1, cluster="after")).status_code == 200
    wait_until(lambda: "cluster=after" in visible(sim_state), 10, "the firing one")
    assert len(sim_state.entries()) == 1


def test_ha_duplicates_are_delivered_once(relay: str, sim_state: SimulatorState) -> None:
    first = samples.node_down(3)
    second = {**first, "externalURL": "http://alertmanager-2:9093"}  # the other replica
    assert post(relay, first).json()["status"] == "accepted"
    assert post(relay, second).json()["status"] == "duplicate"
    resolved = samples.node_down(3, status="resolved")
    assert post(relay, resolved).json()["status"] == "accepted"  # a new state is not a duplicate
    wait_until(lambda: len(sim_state.entries("zhangsan")) == 2, 10, "two messages")


def test_outbox_full_answers_503(relay_for: Any, simulator: str, tmp_path: Path) -> None:
    config = relay_config(simulator + "/cgi-bin/", tmp_path / "small.db")
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"max_size_mb": 1})})
    relay = relay_for(config)
    payload = samples.node_down(1)
    payload["commonAnnotations"] = {"padding": "x" * 400_000}
    codes = [post(relay, {**payload, "groupKey": f"g{i}"}).status_code for i in range(6)]
    assert codes[0] == 200 and 503 in codes
    failed = post(relay, {**payload, "groupKey": "again"})
    assert failed.status_code == 503 and "cannot store the notification durably" in failed.json()["error"]


def test_no_secret_in_logs_or_error_bodies(
    relay_for: Any,
    simulator: str,
    sim_state: SimulatorState,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay = relay_for()
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        bodies.append(post(relay, samples.node_down(3)).text)
        wait_until(lambda: sim_state.entries(), 10)
        sim_state.revoke_tokens()
        bodies.append(post(relay, samples.node_down(2)).text)
        wait_until(lambda: len(sim_state.entries()) == 2, 10)
        sim_state.set_faults(Faults(rate=1.0, kinds=["http_502"]))
        bodies.append(post(relay, samples.node_down(1, cluster="x")).text)
        wait_until(lambda: sim_state.stats()["errors"].get("502"), 10)
        sim_state.set_faults(Faults(rate=0.0))
        sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
        bodies.append(post(relay, samples.node_down(1, cluster="y")).text)
        wait_until(lambda: sim_state.stats()["errors"].get("60020"), 10)
        # a relay whose WeCom is unreachable: httpx errors quote the URL with the token
        dead = relay_for(relay_config("http://127.0.0.1:9/cgi-bin/", tmp_path / "dead.db"))
        bodies.append(post(dead, samples.node_down(1)).text)
        wait_until(lambda: any("cannot reach WeCom" in r.getMessage() for r in caplog.records), 10)
    tokens = list(sim_state.issued_tokens)
    everything = "\n".join(bodies) + caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    everything += capsys.readouterr().err
    assert SANDBOX_SECRET not in everything
    assert len(tokens) >= 2  # the revocation made the relay fetch a second token
    for token in tokens:
        assert token not in everything


def test_a_large_webhook_is_worked_through_off_the_event_loop(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    # A webhook of thousands of alerts is validated and routed in a thread (in pieces: see payload.py).
    # Held inside that work, it must leave the event loop free: /healthz is answered meanwhile, and the
    # webhook is accepted once released. Were the work done on the loop, /healthz would time out.
    config = relay_config(simulator + "/cgi-bin/", tmp_path / "outbox.db")
    body = json.dumps(samples.node_down(3000)).encode()
    assert len(body) > LARGE_BODY
    entered, release = threading.Event(), threading.Event()

    class HeldRouter(Router):
        def route_whole(self, receiver: str, payload: str | bytes, alert_count: int) -> Any:
            entered.set()
            assert release.wait(60)
            return super().route_whole(receiver, payload, alert_count)

    app = create_app(config)
    app.state.relay.router = HeldRouter(config)
    with serve_in_thread(app) as relay, ThreadPoolExecutor(1) as pool:
        webhook = pool.submit(post, relay, body)
        assert entered.wait(30), "the webhook never reached routing"
        try:
            assert httpx.get(f"{relay}/healthz", timeout=10).status_code == 200
        finally:
            release.set()
        response = webhook.result(60)
        assert response.status_code == 200 and response.json()["status"] == "accepted"
        entries = wait_until(lambda: sim_state.entries("zhangsan"), what="delivery")
        assert "10.0.0.0:9100" in entries[0]["visible"]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("startsAt", "yesterday", "alerts.2999.startsAt"),
        ("startsAt", "2026-02-30T09:00:00Z", "alerts.2999.startsAt"),
    ],
)
def test_a_large_webhook_is_refused_naming_the_alert_at_fault(
    relay: str, field: str, value: str, words: str
) -> None:
    body = samples.node_down(3000)
    body["alerts"][2999][field] = value
    data = json.dumps(body).encode()
    assert len(data) > LARGE_BODY  # read in pieces
    response = post(relay, data)
    assert response.status_code == 422
    assert any(words in detail for detail in response.json()["details"]), response.json()
