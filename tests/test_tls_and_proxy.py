"""TLS on the listener, and WeCom calls through an HTTP proxy (the one-trusted-egress-IP setup)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import main
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.helpers import wait_until
from tests.servers import cli_process, free_port, self_signed, serve_in_thread, wait_http


def config_file(tmp_path: Path, api_url: str, **extra: Any) -> Path:
    raw = {
        "wecom": {"api_url": api_url},
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
        "storage": {"path": str(tmp_path / "outbox.db")},
        **extra,
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_tls_listener(tmp_path: Path, simulator: str, sim_state: SimulatorState) -> None:
    cert, key = self_signed(tmp_path)
    config = config_file(
        tmp_path, simulator + "/cgi-bin/", server={"tls": {"cert_path": str(cert), "key_path": str(key)}}
    )
    port = free_port()
    with cli_process(
        ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "log"
    ) as proc:
        url = f"https://127.0.0.1:{port}"
        wait_until(lambda: proc.poll() is None and _tls_ready(url, cert), 20, "the TLS listener")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            assert client.post(f"{url}/alerts/default", json=samples.node_down(1)).status_code == 200
        wait_until(lambda: sim_state.entries("zhangsan"), 10, "delivery")


def _tls_ready(url: str, cert: Path) -> bool:
    try:
        return (
            httpx.get(
                f"{url}/healthz", verify=ssl.create_default_context(cafile=str(cert)), timeout=1
            ).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def forward_proxy(seen: list[str]) -> Callable[..., Awaitable[None]]:
    """A minimal HTTP forward proxy: requests arrive with an absolute URL as their target."""

    async def app(
        scope: dict[str, Any], receive: Callable[..., Awaitable[Any]], send: Callable[..., Awaitable[Any]]
    ) -> None:
        if scope["type"] != "http":
            return
        target = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        seen.append(scope["path"])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k.lower() not in (b"host", b"proxy-connection")
        ]
        async with httpx.AsyncClient() as client:
            response = await client.request(scope["method"], target, content=body, headers=headers)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (b"content-type", response.headers.get("content-type", "application/json").encode())
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    return app


def test_wecom_calls_go_through_the_proxy(tmp_path: Path, simulator: str, sim_state: SimulatorState) -> None:
    seen: list[str] = []
    with serve_in_thread(forward_proxy(seen)) as proxy:
        config = config_file(
            tmp_path, simulator + "/cgi-bin/", wecom={"api_url": simulator + "/cgi-bin/", "proxy_url": proxy}
        )
        port = free_port()
        with cli_process(
            ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], tmp_path / "log"
        ) as p:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=p)
            assert (
                httpx.post(f"http://127.0.0.1:{port}/alerts/default", json=samples.node_down(1)).status_code
                == 200
            )
            wait_until(lambda: sim_state.entries("zhangsan"), 10, "delivery through the proxy")
    assert any(path.endswith("/cgi-bin/gettoken") for path in seen)
    assert any(path.endswith("/cgi-bin/message/send") for path in seen)


def test_check_send_and_appchat_go_through_the_proxy(
    tmp_path: Path, simulator: str, sim_state: SimulatorState
) -> None:
    # Behind the trusted-IP proxy, a command that went around it would report a false 60020.
    seen: list[str] = []
    with serve_in_thread(forward_proxy(seen)) as proxy:
        config = str(
            config_file(
                tmp_path,
                simulator + "/cgi-bin/",
                wecom={"api_url": simulator + "/cgi-bin/", "proxy_url": proxy},
            )
        )
        runner = CliRunner()
        checked = runner.invoke(main, ["check", "--config", config])
        assert checked.exit_code == 0, checked.output
        assert any(path.endswith("/cgi-bin/gettoken") for path in seen)
        assert any(path.endswith("/cgi-bin/message/send") for path in seen)
        seen.clear()
        sent = runner.invoke(main, ["send", "--config", config, "--app", "ops", "--to", "lisi", "hi"])
        assert sent.exit_code == 0, sent.output
        assert any(path.endswith("/cgi-bin/message/send") for path in seen)
        seen.clear()
        created = runner.invoke(
            main,
            [
                *("appchat", "create", "--config", config, "--app", "ops", "--name", "oncall"),
                *("--user", "zhangsan", "--user", "lisi", "--chatid", "oncall1"),
            ],
        )
        assert created.exit_code == 0, created.output
        assert any(path.endswith("/cgi-bin/appchat/create") for path in seen)
    assert sim_state.entries("lisi")
