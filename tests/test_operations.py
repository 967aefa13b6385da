"""Operating the service: auth, admin endpoints, verification files, metrics, reload, Alertmanager config."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import main
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
)
from tests.alertmanager import now_iso, post_alerts, run_alertmanager
from tests.helpers import wait_until
from tests.servers import cli_process, free_port, wait_http

TOKEN = "relay-inbound-token-5f2a9c"
ADMIN_PASSWORD = "admin-password-77aa"
TEAM_PASSWORD = "team-password-31bd"


def write_config(path: Path, simulator: str, **extra: Any) -> Path:
    raw: dict[str, Any] = {
        "wecom": {"api_url": simulator + "/cgi-bin/", "timeout_seconds": 5},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "robots": {"sre": {"key": SANDBOX_ROBOT_KEY}},
        "receivers": [
            {"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]},
            {
                "name": "team",
                "targets": [{"robot": "sre", "msgtype": "text"}],
                "auth": {"basic_auth": {"username": "am", "password": TEAM_PASSWORD}},
            },
        ],
        "server": {
            "auth": {"bearer_token": TOKEN},
            "admin_auth": {"basic_auth": {"username": "admin", "password": ADMIN_PASSWORD}},
        },
        "storage": {"path": str(path.parent / "outbox.db"), "synchronous": "normal"},
        "delivery": {"retry_initial": "100ms", "retry_max": "500ms", "poll_interval": "200ms"},
        "verify_files": [{"name": "WW_verify_2YR9B7ZGcQ3dbN3b.txt", "content": "2YR9B7ZGcQ3dbN3b"}],
    }
    raw.update(extra)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def post_default(base: str, cluster: str) -> int:
    """Post one NodeDown alert of `cluster` to the default receiver, with the webhook token."""
    return httpx.post(
        f"{base}/alerts/default", json=samples.node_down(1, cluster=cluster), headers=BEARER
    ).status_code


def wait_seen(state: SimulatorState, user: str, text: str, timeout: float, what: str) -> None:
    wait_until(lambda: any(text in e["visible"] for e in state.entries(user)), timeout, what)


ADMIN = basic("admin", ADMIN_PASSWORD)


@pytest.fixture
def served(simulator: str, tmp_path: Path) -> Any:
    config = write_config(tmp_path / "relay.yaml", simulator)
    port = free_port()
    with cli_process(
        ["--log-format", "json", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        tmp_path / "relay.log",
    ) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc=proc)
        yield base, config, tmp_path / "relay.log"


def test_webhook_auth_bearer_and_basic(served: Any, sim_state: SimulatorState) -> None:
    base, _config, _log = served
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1)).status_code == 401
    wrong = httpx.post(
        f"{base}/alerts/default", json=samples.node_down(1), headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(1), headers=BEARER).status_code == 200
    # the team receiver has its own basic auth, which replaces the global bearer token
    assert httpx.post(f"{base}/alerts/team", json=samples.node_down(1), headers=BEARER).status_code == 401
    assert (
        httpx.post(f"{base}/alerts/team", json=samples.node_down(1), headers=basic("am", "wrong")).status_code
        == 401
    )
    assert (
        httpx.post(
            f"{base}/alerts/team", json=samples.node_down(1), headers=basic("am", TEAM_PASSWORD)
        ).status_code
        == 200
    )
    wait_until(
        lambda: sim_state.entries("zhangsan") and sim_state.entries("robot:sre"), 10, "both deliveries"
    )


def test_admin_endpoints_need_admin_credentials(served: Any) -> None:
    base, _config, _log = served
    assert httpx.post(f"{base}/-/reload").status_code == 401
    assert httpx.post(f"{base}/-/reload", headers=BEARER).status_code == 401  # webhook token is not admin
    assert httpx.get(f"{base}/api/outbox", headers=basic("admin", "wrong")).status_code == 401
    assert httpx.post(f"{base}/-/reload", json={}, headers=ADMIN).json() == {"status": "reloaded"}
    assert httpx.get(f"{base}/api/outbox", headers=ADMIN).status_code == 200


def test_verification_file_is_served_exactly(served: Any) -> None:
    base, _config, _log = served
    response = httpx.get(f"{base}/WW_verify_2YR9B7ZGcQ3dbN3b.txt")
    assert response.status_code == 200 and response.content == b"2YR9B7ZGcQ3dbN3b"
    assert httpx.get(f"{base}/WW_verify_0000000000000000.txt").status_code == 404


def test_verification_file_from_a_path(tmp_path: Path, simulator: str) -> None:
    source = tmp_path / "WW_verify_abcdefgh12345678.txt"
    source.write_bytes(b"abcdefgh12345678\r\n")
    config = write_config(tmp_path / "relay.yaml", simulator, verify_files=[str(source)])
    port = free_port()
    with cli_process(
        ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "log"
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert (
            httpx.get(f"http://127.0.0.1:{port}/WW_verify_abcdefgh12345678.txt").content
            == b"abcdefgh12345678\r\n"
        )


def test_metrics_count_deliveries_without_secrets(served: Any, sim_state: SimulatorState) -> None:
    base, _config, _log = served
    for i in range(3):
        httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster=f"m{i}"), headers=BEARER)
    httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="m0"), headers=BEARER)  # duplicate
    httpx.post(f"{base}/alerts/default", content=b"{bad", headers=BEARER)

    def sent() -> str | None:
        text = httpx.get(f"{base}/metrics").text
        line = 'alertmanager_wecom_messages_sent_total{channel="app",receiver="default",target="app:ops"} 3.0'
        return text if line in text else None

    text = wait_until(sent, 15, "three sent messages in /metrics")
    assert 'alertmanager_wecom_notifications_received_total{receiver="default",status="accepted"} 3.0' in text
    assert (
        'alertmanager_wecom_notifications_received_total{receiver="default",status="duplicate"} 1.0' in text
    )
    assert 'alertmanager_wecom_notifications_received_total{receiver="default",status="rejected"} 1.0' in text
    assert 'alertmanager_wecom_token_refreshes_total{app="ops"} 1.0' in text
    assert "alertmanager_wecom_delivery_latency_seconds_bucket" in text
    assert "alertmanager_wecom_outbox_pending" in text
    assert "alertmanager_wecom_ingest_writer_exits_total 0.0" in text
    for secret in (
        SANDBOX_SECRET,
        SANDBOX_ROBOT_KEY,
        TOKEN,
        ADMIN_PASSWORD,
        TEAM_PASSWORD,
        *sim_state.issued_tokens,
    ):
        assert secret not in text
    assert "instance" not in text and "zhangsan" not in text  # no alert labels or recipients as labels


def test_reload_bad_file_keeps_old_config_good_file_takes_effect(
    served: Any, simulator: str, sim_state: SimulatorState
) -> None:
    base, config, _log = served
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace("agent_id: 1000002", "agent_id: not-a-number"), encoding="utf-8")
    rejected = httpx.post(f"{base}/-/reload", json={}, headers=ADMIN)
    assert rejected.status_code == 400 and "apps.ops.agent_id" in rejected.json()["error"]
    assert post_default(base, "old") == 200
    wait_seen(sim_state, "zhangsan", "cluster=old", 10, "old config")
    # queue notifications while WeCom fails, then reload a config that sends to lisi as well
    sim_state.set_faults(sim_state.settings.faults.model_copy(update={"rate": 1.0, "kinds": ["busy"]}))
    assert post_default(base, "queued") == 200
    raw = yaml.safe_load(good)
    raw["receivers"][0]["targets"].append({"app": "ops", "to_user": ["lisi"], "msgtype": "text"})
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert httpx.post(f"{base}/-/reload", json={}, headers=ADMIN).json() == {"status": "reloaded"}
    sim_state.set_faults(sim_state.settings.faults.model_copy(update={"rate": 0.0}))
    wait_seen(sim_state, "zhangsan", "cluster=queued", 15, "the notification queued before the reload")
    assert post_default(base, "new") == 200
    wait_seen(sim_state, "lisi", "cluster=new", 10, "new config")
    metrics = httpx.get(f"{base}/metrics").text
    assert 'alertmanager_wecom_config_reloads_total{result="failure"} 1.0' in metrics
    assert "alertmanager_wecom_config_last_reload_successful 1.0" in metrics


def test_sighup_reloads(tmp_path: Path, simulator: str, sim_state: SimulatorState) -> None:
    config = write_config(tmp_path / "relay.yaml", simulator)
    port = free_port()
    with cli_process(
        ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "log"
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        raw["receivers"].append({"name": "added", "targets": [{"app": "ops", "to_user": ["wangwu"]}]})
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        proc.send_signal(1)  # SIGHUP
        wait_until(
            lambda: (
                httpx.post(
                    f"http://127.0.0.1:{port}/alerts/added", json=samples.node_down(1), headers=BEARER
                ).status_code
                == 200
            ),
            10,
            "the added receiver",
        )
        wait_until(lambda: sim_state.entries("wangwu"), 10, "delivery through it")


def test_refuses_public_listen_without_auth(tmp_path: Path, simulator: str) -> None:
    config = write_config(tmp_path / "relay.yaml", simulator, server={})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertmanager_wecom",
            "serve",
            "--config",
            str(config),
            "--listen",
            "0.0.0.0:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "refusing to listen on 0.0.0.0" in result.stderr


def test_logs_are_json_and_hold_no_secret(served: Any, sim_state: SimulatorState) -> None:
    base, _config, log = served
    httpx.post(f"{base}/alerts/default", json=samples.node_down(2), headers=BEARER)
    sim_state.revoke_tokens()
    httpx.post(f"{base}/alerts/default", json=samples.node_down(1, cluster="b"), headers=BEARER)
    httpx.post(
        f"{base}/alerts/default",
        json=samples.node_down(1, cluster="c"),
        headers={"Authorization": "Bearer x"},
    )
    wait_until(lambda: len(sim_state.entries("zhangsan")) == 2, 10, "deliveries")
    lines = [
        json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")
    ]
    delivered = [entry for entry in lines if entry["message"].startswith("delivered receiver=default")]
    assert delivered and all(entry["level"] == "info" for entry in delivered)
    text = log.read_text(encoding="utf-8")
    for secret in (
        SANDBOX_SECRET,
        TOKEN,
        ADMIN_PASSWORD,
        TEAM_PASSWORD,
        SANDBOX_ROBOT_KEY,
        *sim_state.issued_tokens,
    ):
        assert secret not in text


@pytest.mark.e2e  # the real Alertmanager binary
def test_alertmanager_config_loads_in_alertmanager_and_delivers(
    tmp_path: Path, simulator: str, sim_state: SimulatorState
) -> None:
    config = write_config(tmp_path / "relay.yaml", simulator)
    port = free_port()
    secret_file = tmp_path / "relay.secret"
    secret_file.write_text(TOKEN, encoding="utf-8")
    team_secret = tmp_path / "team.secret"
    team_secret.write_text(TEAM_PASSWORD, encoding="utf-8")
    printed = CliRunner().invoke(
        main,
        [
            "alertmanager-config",
            "--config",
            str(config),
            "--url",
            f"http://127.0.0.1:{port}",
            "--credentials-file",
            str(secret_file),
        ],
    )
    assert printed.exit_code == 0, printed.output
    assert TOKEN not in printed.output and TEAM_PASSWORD not in printed.output
    receivers = yaml.safe_load(printed.output)["receivers"]
    receivers[1]["webhook_configs"][0]["http_config"]["basic_auth"]["password_file"] = str(team_secret)
    am_config = {
        "route": {
            "receiver": "default",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "2s",
            "routes": [{"matchers": ['team="yes"'], "receiver": "team"}],
        },
        "receivers": receivers,
    }
    am_file = tmp_path / "am.yml"
    am_file.write_text(yaml.safe_dump(am_config), encoding="utf-8")
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with prometheus-alertmanager"
    check = subprocess.run([amtool, "check-config", str(am_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    with cli_process(
        ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "log"
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        with run_alertmanager(tmp_path, am_config) as am:
            post_alerts(
                am,
                [
                    {"labels": {"alertname": "ViaSnippet", "instance": "a"}, "startsAt": now_iso()},
                    {
                        "labels": {"alertname": "ViaSnippetTeam", "instance": "b", "team": "yes"},
                        "startsAt": now_iso(),
                    },
                ],
            )
            wait_until(
                lambda: any("ViaSnippet" in e["visible"] for e in sim_state.entries("zhangsan")),
                30,
                "delivery through the bearer-token receiver",
            )
            wait_until(
                lambda: any("ViaSnippetTeam" in e["visible"] for e in sim_state.entries("robot:sre")),
                30,
                "delivery through the basic-auth receiver",
            )
