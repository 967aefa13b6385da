"""The edges of the server: slow clients, connection cap, admin endpoints, sandbox mode, hostile input,
bodies over the limit."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import ALERT_BYTES, GROUP_BYTES, main
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from tests.helpers import relay_config, wait_until
from tests.servers import cli_process, free_port, serve_in_thread, wait_http

TOKEN = "edge-token-0c1d"
ADMIN_PASSWORD = "edge-admin-9f3e"


def write_config(tmp_path: Path, simulator: str, **server: Any) -> Path:
    raw = {
        "wecom": {"api_url": simulator + "/cgi-bin/", "timeout_seconds": 5},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [
            {"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]},
            {
                "name": "team",
                "targets": [{"app": "ops", "to_user": ["lisi"]}],
                "auth": {"basic_auth": {"username": "am", "password": "pässwörd"}},
            },
        ],
        "server": server,
        "storage": {"path": str(tmp_path / "outbox.db"), "synchronous": "normal"},
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def serve(simulator: str, tmp_path: Path) -> Iterator[Any]:
    """Start `alertmanager-wecom serve` with these server settings; yields its base URL."""
    running: list[Any] = []

    def start(**server: Any) -> str:
        config = write_config(tmp_path, simulator, **server)
        port = free_port()
        cm = cli_process(
            ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "relay.log"
        )
        proc = cm.__enter__()
        running.append(cm)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc=proc)
        return base

    yield start
    for cm in running:
        cm.__exit__(None, None, None)


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


# -- slow clients, connection cap -----------------------------------------------------------------------


def test_slow_headers_and_bodies_are_cut_off(serve: Any) -> None:
    base = serve(header_timeout="1s", body_timeout="1s")
    idle = connect(base)
    half_header = connect(base)
    half_header.sendall(b"POST /alerts/default HTTP/1.1\r\nHost: localhost\r\n")
    half_body = connect(base)
    half_body.sendall(
        b"POST /alerts/default HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"status": "firing", '
    )
    for sock in (idle, half_header):
        seconds, received = closed_after(sock)
        assert seconds < 5 and received == b""
    seconds, received = closed_after(half_body)
    assert seconds < 5 and received.startswith(b"HTTP/1.1 408 ")
    assert b"server.body_timeout" in received
    # a client that keeps the connection after a response must send its next request in time too
    kept = connect(base)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\n")
    seconds, received = closed_after(kept)
    assert seconds < 5 and received.count(b"HTTP/1.1 200 ") == 1
    for sock in (idle, half_header, half_body, kept):
        sock.close()


def test_connections_beyond_max_connections_get_503(serve: Any) -> None:
    base = serve(max_connections=2)
    held = [connect(base) for _ in range(2)]
    for sock in held:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # headers not finished: the connections stay open
    wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 503, 5, "the cap")
    for sock in held:
        sock.close()
    wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 5, "room again")


# -- admin endpoints -------------------------------------------------------------------------------------


ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


def test_admin_endpoints_are_off_without_admin_auth_even_for_loopback(serve: Any) -> None:
    base = serve()
    for response in (httpx.post(f"{base}/-/reload", json={}), httpx.get(f"{base}/api/outbox")):
        assert response.status_code == 403
        assert "server.admin_auth" in response.json()["error"]
        assert "admin_allow_loopback" in response.json()["error"]


def test_loopback_admin_only_when_allowed_and_proxy_headers_only_from_trusted_proxies(serve: Any) -> None:
    base = serve(admin_allow_loopback=True)
    assert httpx.post(f"{base}/-/reload", json={}).json() == {"status": "reloaded"}
    # X-Forwarded-For from a caller that is not a trusted proxy is not believed (nor needed)
    spoofed = {"X-Forwarded-For": "127.0.0.1"}
    assert httpx.get(f"{base}/api/outbox", headers=spoofed).status_code == 200
    base = serve(admin_allow_loopback=True, trusted_proxies=["127.0.0.0/8"])
    # behind a proxy on this host, the caller is whom the proxy names, not the proxy
    forwarded = httpx.get(f"{base}/api/outbox", headers={"X-Forwarded-For": "203.0.113.7"})
    assert forwarded.status_code == 403
    # the right-most address that is not a trusted proxy is the caller: a forged left entry is ignored
    forged = httpx.get(f"{base}/api/outbox", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.7"})
    assert forged.status_code == 403
    assert httpx.get(f"{base}/api/outbox").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "multipart/form-data; boundary=x"},
    ],
)
def test_state_changing_admin_posts_must_be_json(serve: Any, headers: dict[str, str]) -> None:
    base = serve(admin_auth={"basic_auth": {"username": "admin", "password": ADMIN_PASSWORD}})
    for path, body in (("/-/reload", b""), ("/api/outbox/retry", b'{"all_dead": true}')):
        response = httpx.post(f"{base}{path}", content=body, headers={**ADMIN, **headers})
        if path == "/-/reload" and not headers:
            # As Prometheus takes it (issue 24): the reload sidecars send no body and no content type,
            # which no HTML form can send.
            assert response.json() == {"status": "reloaded"}
            continue
        assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert httpx.post(f"{base}/-/reload", json={}, headers=ADMIN).json() == {"status": "reloaded"}
    assert httpx.post(f"{base}/api/outbox/retry", json={"all_dead": True}, headers=ADMIN).json() == {
        "requeued": 0
    }


# -- sandbox mode ----------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertmanager_wecom", *args], capture_output=True, text=True, timeout=60
    )


def test_sandbox_refuses_a_listen_address_beyond_this_host() -> None:
    for listen in ("0.0.0.0:9095", "192.0.2.1:9095", "[::]:9095"):
        result = run_cli("serve", "--listen", listen)
        assert result.returncode != 0
        assert "sandbox mode listens on this host only" in result.stderr and "--config" in result.stderr


def test_sandbox_banner_shows_the_port_it_really_serves(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    with cli_process(["serve", "--listen", "127.0.0.1:0"], log) as proc:
        match = wait_until(
            lambda: re.search(
                r"webhook for Alertmanager: (http://127\.0\.0\.1:(\d+))/alerts/demo", log.read_text()
            ),
            20,
            "the banner",
        )
        base, port = match.group(1), int(match.group(2))
        assert port != 0
        wait_http(f"{base}/healthz", proc=proc)
        assert httpx.post(f"{base}/alerts/demo", json=samples.node_down(1)).status_code == 200
        # and the sandbox's WeCom is reached on that port too
        wait_until(
            lambda: "NodeDown" in httpx.get(f"{base}/sim/admin/inbox?user=zhangsan").text, 10, "delivery"
        )


def test_serve_with_a_missing_config_is_an_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0
    assert f"config file {tmp_path / 'missing.yaml'} does not exist" in result.stderr
    assert "Sandbox" not in result.stdout


# -- hostile input ---------------------------------------------------------------------------------------


def raw_status(base: str, request: bytes) -> int:
    sock = connect(base)
    try:
        sock.sendall(request)
        _seconds, received = closed_after(sock)
    finally:
        sock.close()
    return int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0


def test_no_input_gets_a_5xx(serve: Any) -> None:
    base = serve(
        auth={"bearer_token": TOKEN},
        admin_auth={"basic_auth": {"username": "admin", "password": ADMIN_PASSWORD}},
    )
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    admin = {**ADMIN, "Content-Type": "application/json"}
    paths = [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/alerts/default",
        "/alerts/team",
        "/alerts/nope",
        "/-/reload",
        "/api/outbox",
        "/api/outbox/retry",
        "/WW_verify_x.txt",
        "/%ff%fe",
        "/a/b/c",
    ]
    queries = [
        "",
        "?limit=-1",
        "?limit=0",
        "?limit=99999999999999999999999999",
        "?limit=abc",
        "?limit=%EF%BC%91%EF%BC%92",  # fullwidth digits
        "?limit=1e3",
        "?state=x",
        "?state=%ff",
        "?limit=%ff",
    ]
    bodies = [
        b"",
        b"{",
        b"\xff\xfe\xfd",
        b"[]",
        b"null",
        b"1e999999",
        b'{"ids": [1e400]}',
        b'{"ids": [99999999999999999999999999]}',
        b'{"ids": [-1, 0]}',
        b'{"ids": ["1"]}',
        b'{"ids": [true]}',
        b'{"ids": {"a": 1}}',
        b'{"all_dead": "yes"}',
        b"[" * 100_000,
        b'{"status": "firing", "alerts": [{"status": "firing", "startsAt": "2026-01-01T00:00:00Z",'
        b' "labels": {"a": "\\ud800"}}]}',
        b'{"status": "firing", "truncatedAlerts": 99999999999999999999999, "alerts": []}',
        json.dumps({**samples.node_down(1), "digest_of": 10**30}).encode(),
    ]
    headers: list[dict[str, str] | dict[bytes, bytes]] = [
        {},
        bearer,
        admin,
        {b"Authorization": b"Basic \xc3\xa9\xc3\xa9\xc3\xa9"},
        {b"Authorization": b"Bearer \xff\xfe"},
        {"Authorization": "Basic " + base64.b64encode("am:pässwörd".encode("latin-1")).decode()},
        {"Authorization": "Basic !!!"},
    ]
    failures = []
    with httpx.Client(timeout=30) as client:
        for path in paths:
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
                for query in queries if path == "/api/outbox" else [""]:
                    for body in bodies if method in ("POST", "PUT") else [b""]:
                        for header in headers if method in ("GET", "POST") else [{}]:
                            response = client.request(
                                method, f"{base}{path}{query}", content=body, headers=header
                            )
                            if response.status_code >= 500:
                                failures.append(
                                    (method, path + query, body[:40], header, response.status_code)
                                )
    assert failures == []
    for request in (
        b"GET /\xff\xfe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: \xff\r\nConnection: close\r\n\r\n",
        b"POST /alerts/default HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
        b"POST /alerts/default HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /alerts/default HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /api/outbox?limit=\xff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ):
        assert raw_status(base, request) < 500, request
    assert httpx.get(f"{base}/readyz").status_code == 200


def test_non_ascii_basic_auth_is_401_not_500(serve: Any) -> None:
    base = serve(admin_auth={"basic_auth": {"username": "admin", "password": ADMIN_PASSWORD}})
    for path in ("/alerts/team", "/-/reload"):
        response = httpx.post(
            f"{base}{path}", json=samples.node_down(1), headers={b"Authorization": b"Basic \xc3\xa9t\xc3\xa9"}
        )
        assert response.status_code == 401
    good = base64.b64encode("am:pässwörd".encode()).decode()
    ok = httpx.post(
        f"{base}/alerts/team", json=samples.node_down(1), headers={"Authorization": f"Basic {good}"}
    )
    assert ok.status_code == 200


def test_admin_ids_and_limits_are_checked(serve: Any) -> None:
    base = serve(admin_auth={"basic_auth": {"username": "admin", "password": ADMIN_PASSWORD}})
    for query in ("limit=-1", "limit=0", "limit=abc", "limit=1.5", "limit=" + "9" * 30):
        assert httpx.get(f"{base}/api/outbox?{query}", headers=ADMIN).status_code == 400, query
    assert httpx.get(f"{base}/api/outbox?limit=5000", headers=ADMIN).status_code == 200
    for ids in ([2**63], [-1], [0], ["1"], [1.5], [True], "1"):
        response = httpx.post(f"{base}/api/outbox/retry", json={"ids": ids}, headers=ADMIN)
        assert response.status_code == 400, ids
    assert httpx.post(f"{base}/api/outbox/retry", json={"ids": [1, 2**63 - 1]}, headers=ADMIN).json() == {
        "requeued": 0
    }


def test_a_webhook_cannot_set_internal_fields(serve: Any, sim_state: SimulatorState) -> None:
    base = serve()
    for field, value in (("digest_of", 7), ("digest_max_messages", 7), ("digest_groups", ["g"])):
        response = httpx.post(f"{base}/alerts/default", json={**samples.node_down(2), field: value})
        assert response.status_code == 422 and field in json.dumps(response.json())
    assert httpx.post(f"{base}/alerts/default", json=samples.node_down(2)).status_code == 200
    wait_until(lambda: sim_state.entries("zhangsan"), 10, "delivery")
    assert "【告警汇总】" not in sim_state.entries("zhangsan")[0]["visible"]


# -- bodies over the limit -------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_logged_with_the_fix_and_counted(
    simulator: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(create_app(relay_config(simulator + "/cgi-bin/", tmp_path / "o.db"))) as base:
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                response = httpx.post(f"{base}/alerts/default", content=b"x" * 5_000_000)
                assert response.status_code == 413
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert "receiver default" in warnings[0] and "max_alerts" in warnings[0]
        assert "server.max_body_bytes" in warnings[0]
        metrics = httpx.get(f"{base}/metrics").text
        assert 'alertmanager_wecom_webhooks_too_large_total{receiver="default"} 2.0' in metrics


def test_a_body_in_pieces_is_read_whole_and_limited_without_a_length(simulator: str, tmp_path: Path) -> None:
    """Chunked bodies (no Content-Length) arrive as several ASGI messages: all are read, and the limit
    holds for their sum."""
    body = json.dumps(samples.node_down(3)).encode()
    config = relay_config(simulator + "/cgi-bin/", tmp_path / "o.db")
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"max_body_bytes": 200_000})}
    )

    def pieces(data: bytes, size: int) -> Iterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    with serve_in_thread(create_app(config)) as base:
        response = httpx.post(f"{base}/alerts/default", content=pieces(body, 97))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        too_large = httpx.post(f"{base}/alerts/default", content=pieces(b" " * 300_000, 50_000))
        assert too_large.status_code == 413


def large_realistic_alert(i: int) -> dict[str, Any]:
    """kube-prometheus's KubePodCrashLooping, as Alertmanager 0.25 sends it."""
    expr = (
        'max_over_time(kube_pod_container_status_waiting_reason{job="kube-state-metrics",namespace=~".*",'
        'reason="CrashLoopBackOff"}[5m]) >= 1'
    )
    return {
        "status": "firing",
        "labels": {
            "alertname": "KubePodCrashLooping",
            "container": "payment-gateway-sidecar",
            "endpoint": "http",
            "instance": f"10.42.{i // 256}.{i % 256}:8080",
            "job": "kube-state-metrics",
            "namespace": "payments-production",
            "pod": f"payment-gateway-7c9d8f6b5-{i:05d}",
            "prometheus": "monitoring/k8s",
            "service": "kube-state-metrics",
            "severity": "warning",
        },
        "annotations": {
            "description": (
                f"Pod payments-production/payment-gateway-7c9d8f6b5-{i:05d} (payment-gateway-sidecar) is in"
                ' waiting state (reason: "CrashLoopBackOff").'
            ),
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
            "summary": "Pod is crash looping.",
        },
        "startsAt": "2026-11-28T09:02:09.546227026Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr="
        + httpx.URL("", params={"q": expr}).query.decode()[2:]
        + "&g0.tab=1",
        "fingerprint": f"{i:016x}",
    }


@pytest.mark.parametrize("max_body_bytes", [4 * 1024 * 1024, 256 * 1024])
def test_alertmanager_config_max_alerts_fits_the_body_limit(
    tmp_path: Path, simulator: str, max_body_bytes: int
) -> None:
    config = write_config(tmp_path, simulator, max_body_bytes=max_body_bytes)
    printed = CliRunner().invoke(
        main, ["alertmanager-config", "--config", str(config), "--url", "http://r:9095"]
    )
    assert printed.exit_code == 0, printed.output
    webhook = yaml.safe_load(printed.output)["receivers"][0]["webhook_configs"][0]
    max_alerts = webhook["max_alerts"]
    assert max_alerts > 0
    # the per-alert budget is at least twice a large realistic alert, and a full group fits
    assert 2 * len(json.dumps(large_realistic_alert(0)).encode()) <= ALERT_BYTES
    alerts = [large_realistic_alert(i) for i in range(max_alerts)]
    body = {
        **samples.node_down(1),
        "alerts": alerts,
        "commonAnnotations": {"summary": "Pod is crash looping.", "runbook_url": "x" * 200},
        "commonLabels": {k: v for k, v in alerts[0]["labels"].items() if k != "pod"},
    }
    assert len(json.dumps(body).encode()) <= max_body_bytes - GROUP_BYTES // 2
    overridden = CliRunner().invoke(
        main, ["alertmanager-config", "--config", str(config), "--url", "http://r:9095", "--max-alerts", "0"]
    )
    assert yaml.safe_load(overridden.output)["receivers"][0]["webhook_configs"][0]["max_alerts"] == 0
