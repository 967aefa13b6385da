"""The service answers only its own hosts (issue 20: DNS rebinding), a state-changing request only from
its own pages, and a reload as Prometheus takes it (issue 24: the sidecars' bodiless POST).

Real HTTP over loopback: a rebinding page's request reaches 127.0.0.1 with the attacker's name as Host
(and, from its own page, a matching Origin); httpx sends exactly those headers here.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.samples import node_down
from alertmanager_wecom.throttled_log import ThrottledLog
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.web.hosts import HostPolicy, hostname
from tests.helpers import raw_config
from tests.servers import cli_process, free_port, serve_in_thread, wait_http

EVIL = "evil.example"


def _console_app(tmp_path: Path, **server: Any) -> Any:
    raw = raw_config("http://127.0.0.1:9/", tmp_path, {"app": "ops", "to_user": ["a"], "msgtype": "markdown"})
    raw["server"] = {"admin_allow_loopback": True, **server}
    path = tmp_path / "config.yaml"  # a file, so that a reload has something to read
    path.write_text(json.dumps(raw), encoding="utf-8")
    return create_app(parse_config(raw), config_path=str(path))


def _attempts(url: str, host: str, origin: str | None) -> dict[str, httpx.Response]:
    """What a page can try: the console, the preview, an admin action, the webhook."""
    port = url.rsplit(":", 1)[1]
    headers = {"Host": f"{host}:{port}"}
    if origin is not None:
        headers["Origin"] = origin
    preview = {
        "payload": json.dumps(node_down(1, receiver="default")),
        "receiver": "default",
        "index": 0,
        "template": "{{ alerts|length }}",
    }
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        return {
            "console": client.get("/ui"),
            "preview": client.post("/ui/api/preview", json=preview),
            "reload": client.post("/-/reload", json={}),
            "retry": client.post("/api/outbox/retry", json={"all_dead": True}),
            "webhook": client.post("/alerts/default", json=node_down(1, receiver="default")),
            "healthz": client.get("/healthz"),
        }


def test_a_rebinding_request_gets_nothing_and_the_real_host_everything(tmp_path: Path) -> None:
    with serve_in_thread(_console_app(tmp_path)) as url:
        port = url.rsplit(":", 1)[1]
        refused = _attempts(url, EVIL, f"http://{EVIL}:{port}")
        for what, answer in refused.items():
            assert answer.status_code == 421, (what, answer.status_code, answer.text)
            assert "server.allowed_hosts" in answer.json()["error"]
            assert "<html" not in answer.text.lower()
        for host in ("127.0.0.1", "localhost"):
            served = _attempts(url, host, f"http://{host}:{port}")
            assert served["console"].status_code == 200 and "<html" in served["console"].text.lower()
            assert served["preview"].json()["messages"][0]["html"], served["preview"].text
            assert served["reload"].json() == {"status": "reloaded"}
            assert served["retry"].status_code == 200
            assert served["webhook"].status_code == 200
            assert served["healthz"].status_code == 200


def test_an_admin_post_from_another_sites_page_is_refused_even_with_our_host(tmp_path: Path) -> None:
    with serve_in_thread(_console_app(tmp_path)) as url:
        port = url.rsplit(":", 1)[1]
        for origin in (f"http://{EVIL}:{port}", "null", f"http://127.0.0.1.{EVIL}", "file://"):
            answers = _attempts(url, "127.0.0.1", origin)
            for what in ("preview", "reload", "retry"):
                assert answers[what].status_code == 403, (origin, what, answers[what].text)
                assert "cross-site" in answers[what].json()["error"]
        # Sec-Fetch-Site is what a browser says of its own accord on a cross-site request.
        answer = httpx.post(f"{url}/-/reload", json={}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10)
        assert answer.status_code == 403


def test_allowed_hosts_and_external_url_are_served(tmp_path: Path) -> None:
    app = _console_app(
        tmp_path,
        allowed_hosts=["alertmanager-wecom.monitoring.svc", "*.corp.example"],
        external_url="https://alerts.example.com/wecom",
    )
    with serve_in_thread(app) as url:
        for host, status in [
            ("alertmanager-wecom.monitoring.svc", 200),
            ("ALERTMANAGER-WECOM.monitoring.svc.", 200),
            ("relay.corp.example", 200),
            ("alerts.example.com", 200),
            ("corp.example", 421),
            ("alertmanager-wecom", 421),
            ("10.1.2.3", 421),  # a specific listen address: other addresses are not ours
        ]:
            answer = httpx.get(f"{url}/healthz", headers={"Host": host}, timeout=10)
            assert answer.status_code == status, host


def test_reload_takes_the_sidecars_bodiless_post_and_refuses_a_cross_site_one(tmp_path: Path) -> None:
    password = "sidecar-password-0000"
    admin = {
        "admin_allow_loopback": False,
        "admin_auth": {"basic_auth": {"username": "admin", "password": password}},
    }
    with serve_in_thread(_console_app(tmp_path, **admin)) as url:
        port = url.rsplit(":", 1)[1]
        # configmap-reload (deploy/kubernetes): http.NewRequest("POST", url, nil) to
        # http://admin:$(ADMIN_PASSWORD)@127.0.0.1:9095/-/reload: Go turns the URL's user into basic
        # auth and sends Content-Length: 0, Accept-Encoding: gzip, its agent, no body, no Content-Type.
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        raw = httpx.Request(
            "POST",
            f"{url}/-/reload",
            headers={
                "User-Agent": "Go-http-client/1.1",
                "Accept-Encoding": "gzip",
                "Authorization": f"Basic {basic}",
            },
        )
        assert "content-type" not in raw.headers and raw.headers["content-length"] == "0"
        with httpx.Client(timeout=10) as client:
            answer = client.send(raw)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "reloaded"}
        # A form's text/plain POST from another site's page: refused, and not for its content type.
        answer = httpx.post(
            f"{url}/-/reload",
            content=b"x",
            headers={
                "Content-Type": "text/plain",
                "Origin": f"http://{EVIL}:{port}",
                "Authorization": f"Basic {basic}",
            },
            timeout=10,
        )
        assert answer.status_code == 403
        # The same text/plain POST from no page at all: still JSON or nothing.
        plain = {"Content-Type": "text/plain", "Authorization": f"Basic {basic}"}
        answer = httpx.post(f"{url}/-/reload", content=b"x", headers=plain, timeout=10)
        assert answer.status_code == 415
        # Without the password: 401, whatever else.
        assert httpx.post(f"{url}/-/reload", timeout=10).status_code == 401
        # Other admin POSTs stay JSON only.
        retry = httpx.Request("POST", f"{url}/api/outbox/retry", headers={"Authorization": f"Basic {basic}"})
        with httpx.Client(timeout=10) as client:
            assert client.send(retry).status_code == 415


def test_the_sandbox_answers_loopback_names_only(tmp_path: Path) -> None:
    port = free_port()
    with cli_process(["serve", "--listen", f"127.0.0.1:{port}"], tmp_path / "sandbox.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        for host in ("localhost", "127.0.0.1", "[::1]"):
            assert httpx.get(f"{url}/ui", headers={"Host": f"{host}:{port}"}, timeout=10).status_code == 200
        refused = _attempts(url, EVIL, f"http://{EVIL}:{port}")
        assert {a.status_code for a in refused.values()} == {421}
        inbox = httpx.get(f"{url}/sim/inbox", headers={"Host": f"{EVIL}:{port}"}, timeout=10)
        assert inbox.status_code == 421


def test_a_wildcard_listen_answers_ip_addresses_but_not_names() -> None:
    policy = HostPolicy.build([], "0.0.0.0", None)
    assert policy.serves("10.244.1.7") and policy.serves("::1") and policy.serves("localhost")
    assert not policy.serves("alertmanager-wecom") and not policy.serves(EVIL)
    # An Origin must be a name we serve or the request's own host: an attacker's page on an IP is not.
    assert policy.origin_refusal("http://203.0.113.9", "10.244.1.7:9095", None) is not None
    assert policy.origin_refusal("http://10.244.1.7:9095", "10.244.1.7:9095", None) is None


@given(st.text(max_size=80))
def test_hostname_never_fails_and_never_serves_a_foreign_name(netloc: str) -> None:
    policy = HostPolicy.build(["relay.example"], "127.0.0.1", None)
    name = hostname(netloc)
    if policy.serves(name):
        assert name in {"localhost", "127.0.0.1", "::1", "relay.example"}


def test_bad_allowed_hosts_are_refused_at_load(tmp_path: Path) -> None:
    raw = raw_config("http://127.0.0.1:9/", tmp_path, {"app": "ops", "to_user": ["a"]})
    raw["server"] = {"allowed_hosts": ["https://relay.example/x"]}
    with pytest.raises(ConfigError, match=r"allowed_hosts.*not a host name"):
        parse_config(raw)
    raw["server"] = {"external_url": "relay.example"}
    with pytest.raises(ConfigError, match=r"external_url.*not an http"):
        parse_config(raw)


def test_refusals_are_logged_at_a_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttled"), period=60, burst=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        written = [throttled.warning("refused %s", i) for i in range(100)]
        now[0] = 61.0
        throttled.warning("refused %s", "later")
    assert written.count(True) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["refused 0", "refused 1", "refused 2"]
    assert lines[3] == "refused later (97 more like this were not logged)"
    assert len(lines) == 4


def test_a_flood_of_foreign_hosts_logs_a_few_lines(tmp_path: Path) -> None:
    """The service itself, with its log: 200 refused requests leave a handful of lines."""
    port = free_port()
    config = tmp_path / "config.yaml"
    raw = raw_config("http://127.0.0.1:9/", tmp_path, {"app": "ops", "to_user": ["a"]})
    config.write_text(json.dumps(raw), encoding="utf-8")
    log = tmp_path / "serve.log"
    with cli_process(["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], log) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        started = time.monotonic()
        for i in range(200):
            answer = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"n{i}.{EVIL}"}, timeout=10)
            assert answer.status_code == 421
        minutes = math.ceil((time.monotonic() - started) / 60)  # a loaded machine may take over one
    lines = log.read_text(encoding="utf-8").splitlines()
    refused = [line for line in lines if "refused a request for Host" in line]
    assert 1 <= len(refused) <= 5 * minutes, refused
