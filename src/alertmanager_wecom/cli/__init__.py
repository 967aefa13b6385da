"""The `alertmanager-wecom` command."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
from starlette.routing import BaseRoute, Mount

from alertmanager_wecom import __version__, samples
from alertmanager_wecom.config import Config, ConfigError, Target, parse_target, validate_target
from alertmanager_wecom.config.loader import load_config, parse_config
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.logsetup import setup_logging
from alertmanager_wecom.rendering.renderer import Renderer, TemplateError
from alertmanager_wecom.web.auth import is_loopback
from alertmanager_wecom.web.serving import run_server
from alertmanager_wecom.wecom.api import http_client

log = logging.getLogger("alertmanager_wecom")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: use HOST:PORT, e.g. 127.0.0.1:9095 or 0.0.0.0:9095")
    return host.strip("[]") or "0.0.0.0", int(port)


def _load(path: str) -> Config:
    if not Path(path).exists():
        raise click.ClickException(
            f"config file {path} does not exist (serve without --config runs the sandbox, with a simulated WeCom)"
        )
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"config {path} is invalid:\n{exc}") from None


def _storage_problem(config: Config, create: bool) -> None:
    """Stop with one line naming storage.path and the fix if the outbox cannot be opened read-write."""
    from alertmanager_wecom.outbox.sqlite import storage_problem

    problem = storage_problem(config.storage.path, create=create)
    if problem is not None:
        raise click.ClickException(problem)


@click.group()
@click.version_option(__version__, prog_name="alertmanager-wecom")
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True
)
@click.option("--log-format", default="plain", type=click.Choice(["plain", "json"]), show_default=True)
def main(log_level: str, log_format: str) -> None:
    """Deliver Alertmanager and Grafana alerts to WeCom (企业微信)."""
    setup_logging(log_level, json_lines=log_format == "json")


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config; omit for sandbox mode."
)
@click.option("--listen", help="HOST:PORT to listen on (default: server.listen, 127.0.0.1:9095).")
def serve(config_path: str | None, listen: str | None) -> None:
    """Run the relay. Without --config: sandbox mode, with the WeCom simulator in the same process."""
    from alertmanager_wecom.web.app import create_app

    level = logging.getLevelName(logging.getLogger().level).lower()
    if config_path is None:
        _sandbox(listen, level)
        return
    config = _load(config_path)
    host, port = parse_listen(listen or config.server.listen)
    unprotected = [r.name for r in config.receivers if (r.auth or config.server.auth) is None]
    if unprotected and not is_loopback(host) and not config.server.allow_unauthenticated:
        raise click.ClickException(
            f"refusing to listen on {host}:{port} with no inbound auth for receivers {', '.join(unprotected)}: "
            "set server.auth (bearer_token or basic_auth, as in Alertmanager's http_config) or receiver auth, "
            "or server.allow_unauthenticated: true if a network policy protects the port"
        )
    _storage_problem(config, create=True)
    tls = config.server.tls
    log.info(
        "listening on %s://%s:%d; receivers: %s",
        "https" if tls else "http",
        host,
        port,
        ", ".join(f"/alerts/{r.name}" for r in config.receivers) or "none",
    )
    run_server(
        create_app(config, config_path=config_path),
        host,
        port,
        level,
        tls=(tls.cert_path, tls.key_path) if tls else None,
        header_timeout=config.server.header_timeout,
        max_connections=config.server.max_connections,
    )


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _sandbox(listen: str | None, level: str) -> None:
    """Sandbox mode: no auth and a simulated WeCom, so loopback only; announced with the real address."""
    from alertmanager_wecom.sandbox import DEMO_RECEIVER, SIMULATOR_PREFIX, sandbox_config
    from alertmanager_wecom.simulator import create_simulator_app, sandbox_settings
    from alertmanager_wecom.web.app import create_app

    host, port = parse_listen(listen or "127.0.0.1:9095")
    if not is_loopback(host):
        raise click.ClickException(
            f"sandbox mode listens on this host only (127.0.0.1, ::1 or localhost), not {host}: it has no"
            " authentication and its WeCom is simulated. To serve other hosts, write a config"
            " (see README, Configure) and run `alertmanager-wecom serve --config FILE`"
        )
    sock = _bind(host, port)
    port = int(sock.getsockname()[1])  # port 0: the one the system chose
    data_dir = tempfile.mkdtemp(prefix="alertmanager-wecom-sandbox-")
    try:
        config = sandbox_config(host, port, data_dir)
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        extra: list[BaseRoute] = [Mount(SIMULATOR_PREFIX, app=create_simulator_app(sandbox_settings()))]
        click.echo(
            "Sandbox mode: no --config given, so WeCom is simulated in this process.\n"
            f"  webhook for Alertmanager: {base}/alerts/{DEMO_RECEIVER}\n"
            f"  what people would see:    {base}{SIMULATOR_PREFIX}/inbox\n"
            f"  send sample alerts:       alertmanager-wecom demo --url {base}\n"
        )
        server = config.server
        run_server(
            create_app(config, extra_routes=extra),
            host,
            port,
            level,
            header_timeout=server.header_timeout,
            max_connections=server.max_connections,
            sock=sock,
        )
    finally:
        sock.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
def check_config(config_path: str) -> None:
    """Validate a config file (and compile its templates) without contacting WeCom."""
    config = _load(config_path)
    _storage_problem(config, create=False)
    targets = sum(len(r.targets) for r in config.receivers)
    click.echo(
        f"{config_path}: OK — {len(config.apps)} app(s), {len(config.receivers)} receiver(s), "
        f"{targets} target(s)"
    )


@main.command()
@click.option("--listen", default="127.0.0.1:9096", show_default=True, help="HOST:PORT to listen on.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Simulator YAML (corps, users, apps, robots, limits); default: the sandbox corp.",
)
@click.option("--token-ttl", type=int, help="Access token lifetime in seconds (WeCom: 7200).")
@click.option("--fault-rate", type=float, help="Fraction of API calls that fail (0..1).")
@click.option("--fault-kinds", help="Comma list of busy, rate_limit, http_502, slow.")
@click.option("--slow-seconds", type=float, help="Delay of a 'slow' fault.")
@click.option("--fault-seed", type=int, help="Seed for the fault sequence (reproducible runs).")
@click.option(
    "--trusted-ip",
    "trusted_ips",
    multiple=True,
    help="Only these caller IPs may send (others get 60020); repeat for several.",
)
def simulator(
    listen: str,
    config_path: str | None,
    token_ttl: int | None,
    fault_rate: float | None,
    fault_kinds: str | None,
    slow_seconds: float | None,
    fault_seed: int | None,
    trusted_ips: tuple[str, ...],
) -> None:
    """Run the WeCom simulator: gettoken, message/send, webhook/send, media/upload, and an inbox page."""
    from pydantic import ValidationError

    from alertmanager_wecom.simulator import SimulatorSettings, create_simulator_app, sandbox_settings

    try:
        settings = SimulatorSettings.load(config_path) if config_path else sandbox_settings()
        faults = settings.faults.model_dump()
        for key, value in (("rate", fault_rate), ("slow_seconds", slow_seconds), ("seed", fault_seed)):
            if value is not None:
                faults[key] = value
        if fault_kinds:
            faults["kinds"] = [k.strip() for k in fault_kinds.split(",") if k.strip()]
        update: dict[str, Any] = {"faults": type(settings.faults).model_validate(faults)}
        if token_ttl is not None:
            update["token_ttl_seconds"] = token_ttl
        settings = SimulatorSettings.model_validate(
            {**settings.model_dump(), **update, "faults": update["faults"].model_dump()}
        )
    except (ValidationError, OSError) as exc:
        raise click.ClickException(f"simulator settings are invalid: {exc}") from None
    if trusted_ips:
        for corp in settings.corps:
            for app in corp.apps:
                app.trusted_ips = list(trusted_ips)
    host, port = parse_listen(listen)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"WeCom simulator on http://{shown}:{port}/cgi-bin/  (set wecom.api_url to this)")
    click.echo(f"inbox: http://{shown}:{port}/inbox")
    for corp in settings.corps:
        for app in corp.apps:
            click.echo(f"  corp_id {corp.corp_id}  agent_id {app.agent_id}  users {', '.join(corp.users)}")
    run_server(create_simulator_app(settings), host, port, "warning")


@main.command()
@click.option("--url", default="http://127.0.0.1:9095", show_default=True, help="The relay's base URL.")
@click.option("--receiver", default="demo", show_default=True)
def demo(url: str, receiver: str) -> None:
    """Post sample alerts to a running relay (a small group, a mixed group, 100 alerts, then resolved)."""
    payloads = [
        ("2 NodeDown alerts", samples.node_down(2, receiver=receiver)),
        ("a mixed group (firing and resolved)", samples.mixed(receiver=receiver)),
        ("a group of 100 alerts", samples.node_down(100, receiver=receiver, cluster="prod-sh")),
        ("the 2 NodeDown alerts resolved", samples.node_down(2, status="resolved", receiver=receiver)),
    ]
    target = url.rstrip("/") + f"/alerts/{receiver}"
    failed = False
    with httpx.Client(timeout=30) as client:
        for label, payload in payloads:
            try:
                response = client.post(target, json=payload)
            except httpx.HTTPError as exc:
                raise click.ClickException(
                    f"cannot reach {target}: {exc}; is `alertmanager-wecom serve` running?"
                ) from None
            click.echo(f"{label}: HTTP {response.status_code} {response.text}")
            failed = failed or response.status_code >= 300
    click.echo(f"now open {url.rstrip('/')}/sim/inbox (sandbox) or your WeCom client")
    if failed:
        sys.exit(1)


def _describe_target(target: Target) -> str:
    from alertmanager_wecom.channels import kind_of

    return kind_of(target).describe(target)


def _read_text(text: str | None) -> str:
    if text is None or text == "-":
        return sys.stdin.read()
    return text


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--app", "app_name", required=True, help="App name from the config's apps.")
@click.option("--to", "to_user", multiple=True, help="userid (repeat, or @all).")
@click.option("--party", "to_party", multiple=True, help="Department id (repeat).")
@click.option("--tag", "to_tag", multiple=True, help="Tag id (repeat).")
@click.option("--msgtype", default="text", type=click.Choice(["text", "markdown"]), show_default=True)
@click.argument("text", required=False)
def send(
    config_path: str,
    app_name: str,
    to_user: tuple[str, ...],
    to_party: tuple[str, ...],
    to_tag: tuple[str, ...],
    msgtype: str,
    text: str | None,
) -> None:
    """Send a message through an app (TEXT, or stdin when omitted or '-'); long text is split to fit."""
    from alertmanager_wecom.channels import build_channel
    from alertmanager_wecom.rendering.fit import CONTENT_LIMITS, split_text
    from alertmanager_wecom.rendering.message import Message
    from alertmanager_wecom.wecom.api import WeComAPI, WeComError

    config = _load(config_path)
    if app_name not in config.apps:
        raise click.ClickException(f"unknown app {app_name!r}; apps: {', '.join(config.apps) or 'none'}")
    try:
        target = validate_target(
            {
                "app": app_name,
                "to_user": list(to_user),
                "to_party": list(to_party),
                "to_tag": list(to_tag),
                "msgtype": msgtype,
            }
        )
    except ValueError as exc:
        raise click.ClickException(str(exc).splitlines()[-1]) from None
    content = _read_text(text).strip()
    if not content:
        raise click.ClickException("nothing to send: give TEXT or pipe it on stdin")

    async def run() -> None:
        async with http_client(config.wecom) as client:
            channel = build_channel(target, config, WeComAPI(config.wecom.api_url, client), {})
            chunks = split_text(content, CONTENT_LIMITS[msgtype])
            for chunk in chunks:
                try:
                    result = await channel.send(Message(msgtype, chunk))
                except WeComError as exc:
                    raise click.ClickException(exc.detail) from None
                for key, names in result.invalid.items():
                    click.echo(
                        f"warning: WeCom skipped {key.removeprefix('invalid')} {'|'.join(names)}", err=True
                    )
            click.echo(f"sent {len(chunks)} message(s) to {channel.name}")

    asyncio.run(run())


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--no-send", is_flag=True, help="Only check credentials; send no test message.")
def check(config_path: str, no_send: bool) -> None:
    """Get a token for each app, send a test message to each target, and explain each failure."""
    from alertmanager_wecom.wecom.checks import run_checks

    config = _load(config_path)

    async def run() -> bool:
        async with http_client(config.wecom) as client:
            results = await run_checks(config, client, send=not no_send)
        for result in results:
            click.echo(result.line())
        return all(r.ok for r in results)

    if not asyncio.run(run()):
        sys.exit(1)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config whose receiver targets to render for; omit to use the defaults below.",
)
@click.option("--receiver", help="Receiver name (default: the first).")
@click.option(
    "--msgtype",
    default="markdown",
    type=click.Choice(["text", "markdown", "textcard"]),
    show_default=True,
    help="Without --config.",
)
@click.option(
    "--language", default="zh", type=click.Choice(["zh", "en"]), show_default=True, help="Without --config."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.argument("payload", type=click.File("r", encoding="utf-8"))
def render(
    config_path: str | None, receiver: str | None, msgtype: str, language: str, as_json: bool, payload: Any
) -> None:
    """Print the messages a webhook PAYLOAD (a file, or - for stdin) would become, with byte counts."""
    from alertmanager_wecom.rendering import fit
    from alertmanager_wecom.rendering.fit import byte_len

    try:
        notification = Notification.model_validate(json.load(payload))
    except ValueError as exc:
        raise click.ClickException(f"payload is not an Alertmanager webhook body: {exc}") from None
    if config_path:
        config = _load(config_path)
    else:
        config = parse_config(
            {
                "apps": {"app": {"corp_id": "ww", "agent_id": 1, "secret": "unused-for-render"}},
                "receivers": [
                    {
                        "name": "default",
                        "targets": [
                            {"app": "app", "to_user": ["@all"], "msgtype": msgtype, "language": language}
                        ],
                    }
                ],
            }
        )
    chosen = config.receiver(receiver) if receiver else (config.receivers[0] if config.receivers else None)
    if chosen is None:
        raise click.ClickException(f"no receiver {receiver!r} in the config")
    from alertmanager_wecom.delivery.render import render_messages
    from alertmanager_wecom.ingest.routing import Router

    out: list[dict[str, Any]] = []
    raw = notification.model_dump_json(by_alias=True)
    for job in Router(config).route(chosen.name, notification, raw):
        target = parse_target(job.target)
        where = _describe_target(target)
        if job.dead_reason:
            out.append(
                {
                    "target": where,
                    "message": 0,
                    "of": 0,
                    "msgtype": target.msgtype,
                    "bytes": 0,
                    "limit": 0,
                    "title": "",
                    "content": f"(not deliverable: {job.dead_reason})",
                }
            )
            continue
        try:
            messages = render_messages(
                target, Renderer.for_target(target, config), Notification.model_validate_json(job.payload)
            )
        except TemplateError as exc:
            raise click.ClickException(str(exc)) from None
        limit = fit.content_limit(target.msgtype, robot=target.robot is not None)
        for number, message in enumerate(messages, 1):
            out.append(
                {
                    "target": where,
                    "message": number,
                    "of": len(messages),
                    "msgtype": message.msgtype,
                    "bytes": byte_len(message.content),
                    "limit": limit,
                    "title": message.title,
                    "content": message.content,
                    "mentions": list(message.mentions),
                }
            )
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for item in out:
        click.echo(
            f"--- {item['target']} · message {item['message']}/{item['of']} · {item['msgtype']} · "
            f"{item['bytes']}/{item['limit']} bytes ---"
        )
        if item.get("mentions"):
            click.echo(f"(mentioned_list: {', '.join(item['mentions'])})")
        if item["title"]:
            click.echo(item["title"])
        click.echo(item["content"])
    if not out:
        click.echo("(no messages: nothing to send for this payload and these targets)")


# -- alertmanager-config -------------------------------------------------------------------------------

# What one alert adds to a webhook body, conservatively: a large realistic alert (kube-prometheus's
# KubePodCrashLooping as Alertmanager 0.25 sends it: 10 labels, summary, description, runbook_url, a
# generatorURL carrying the PromQL) is about 1.2 KB of JSON (tests/test_server_edges.py builds it);
# 4 KiB leaves room for long descriptions. GROUP_BYTES: the group's own fields (groupKey, groupLabels,
# commonLabels, commonAnnotations, externalURL).
ALERT_BYTES = 4096
GROUP_BYTES = 16384


def max_alerts_for(max_body_bytes: int) -> int:
    """Alertmanager's webhook max_alerts that keeps its bodies within `max_body_bytes`."""
    return max(1, (max_body_bytes - GROUP_BYTES) // ALERT_BYTES)


@main.command("alertmanager-config")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--url", required=True, help="The relay's base URL as Alertmanager reaches it, e.g. http://relay:9095"
)
@click.option(
    "--credentials-file",
    default="/etc/alertmanager/wecom-relay.secret",
    show_default=True,
    help="Where Alertmanager reads the bearer token or basic-auth password (never printed).",
)
@click.option(
    "--max-alerts",
    type=click.IntRange(min=0),
    help="webhook max_alerts (0: all). Default: as many as fit in server.max_body_bytes.",
)
def alertmanager_config(config_path: str, url: str, credentials_file: str, max_alerts: int | None) -> None:
    """Print the Alertmanager `receivers:` for this config's receivers (webhook_configs with auth)."""
    config = _load(config_path)
    if max_alerts is None:
        max_alerts = max_alerts_for(config.server.max_body_bytes)
    receivers = []
    for receiver in config.receivers:
        webhook: dict[str, Any] = {
            "url": f"{url.rstrip('/')}/alerts/{receiver.name}",
            "send_resolved": True,
            "max_alerts": max_alerts,
        }
        auth = receiver.auth or config.server.auth
        if auth is not None and auth.bearer_token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials_file": credentials_file}
            }
        elif auth is not None and auth.basic_auth is not None:
            webhook["http_config"] = {
                "basic_auth": {"username": auth.basic_auth.username, "password_file": credentials_file}
            }
        receivers.append({"name": receiver.name, "webhook_configs": [webhook]})
    import yaml

    click.echo(
        f"# Alertmanager receivers for alertmanager-wecom ({config_path}); route alerts to them by name."
    )
    if max_alerts:
        click.echo(
            f"# max_alerts {max_alerts}: a larger group would exceed server.max_body_bytes"
            f" ({config.server.max_body_bytes}) and be refused with 413, which Alertmanager does not retry;"
            " it sends the first alerts and the relay shows how many were left out."
        )
    if any((r.auth or config.server.auth) is not None for r in config.receivers):
        click.echo(
            f"# Put the relay's token (or basic-auth password) in {credentials_file}, readable by Alertmanager."
        )
    click.echo(yaml.safe_dump({"receivers": receivers}, sort_keys=False, allow_unicode=True).rstrip())


# -- appchat -------------------------------------------------------------------------------------------


@main.group()
def appchat() -> None:
    """Create or show an app chat (群聊会话) that a target can send to with `chat: CHATID`."""


def _app_token(config: Config, app_name: str, client: httpx.AsyncClient) -> Any:
    from alertmanager_wecom.channels import token_for
    from alertmanager_wecom.wecom.api import WeComAPI

    if app_name not in config.apps:
        raise click.ClickException(f"unknown app {app_name!r}; apps: {', '.join(config.apps) or 'none'}")
    return token_for(app_name, config, WeComAPI(config.wecom.api_url, client), {})


@appchat.command("create")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--app", "app_name", required=True)
@click.option("--name", required=True, help="The chat's name.")
@click.option("--owner", help="userid of the owner (default: the first member).")
@click.option("--user", "users", multiple=True, required=True, help="A member's userid (at least 2).")
@click.option("--chatid", help="Your own chat id (letters and digits); WeCom makes one otherwise.")
def appchat_create(
    config_path: str, app_name: str, name: str, owner: str | None, users: tuple[str, ...], chatid: str | None
) -> None:
    from alertmanager_wecom.wecom.api import WeComError

    config = _load(config_path)

    async def run() -> str:
        async with http_client(config.wecom) as client:
            token = _app_token(config, app_name, client)
            body: dict[str, Any] = {"name": name, "userlist": list(users)}
            if owner:
                body["owner"] = owner
            if chatid:
                body["chatid"] = chatid
            try:
                reply = await token.call("POST", "appchat/create", body=body)
            except WeComError as exc:
                raise click.ClickException(exc.detail) from None
            return str(reply["chatid"])

    created = asyncio.run(run())
    click.echo(f"created app chat {created}; send to it with a target {{app: {app_name}, chat: {created}}}")


@appchat.command("show")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--app", "app_name", required=True)
@click.argument("chatid")
def appchat_show(config_path: str, app_name: str, chatid: str) -> None:
    from alertmanager_wecom.wecom.api import WeComError

    config = _load(config_path)

    async def run() -> dict[str, Any]:
        async with http_client(config.wecom) as client:
            token = _app_token(config, app_name, client)
            try:
                reply = await token.call("GET", "appchat/get", params={"chatid": chatid})
            except WeComError as exc:
                raise click.ClickException(exc.detail) from None
            info = reply.get("chat_info")
            return info if isinstance(info, dict) else {}

    info = asyncio.run(run())
    click.echo(
        f"chat {info.get('chatid')}: {info.get('name')!r}, owner {info.get('owner')}, "
        f"members {', '.join(info.get('userlist', []))}"
    )


# -- outbox ---------------------------------------------------------------------------------------------


def _open_outbox(config_path: str | None, db: str | None) -> Any:
    from alertmanager_wecom.outbox import SQLiteOutbox

    if db is None:
        if config_path is None:
            raise click.ClickException("give --config FILE (its storage.path) or --db PATH")
        db = _load(config_path).storage.path
    if not Path(db).exists():
        raise click.ClickException(f"no outbox at {db}")
    return SQLiteOutbox(db)


def _job_line(job: Any) -> str:
    target = json.loads(job.target)
    recipients = "|".join(
        target.get("to_user", [])
        + [f"party:{p}" for p in target.get("to_party", [])]
        + [f"tag:{t}" for t in target.get("to_tag", [])]
    )
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created_at))
    extra = f" digest_of={job.digest_of}" if job.digest_of else ""
    why = f"  {job.reason}: {job.last_error}" if job.last_error else ""
    return (
        f"{job.id:>7} {job.state.value:<8} {when} receiver={job.receiver} app={target.get('app')}→{recipients}"
        f" attempts={job.attempts} sent_parts={job.sent_parts}{extra}{why}"
    )


_outbox_options = [
    click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="Config (for storage.path)."
    ),
    click.option("--db", type=click.Path(dir_okay=False), help="Outbox file (instead of --config)."),
]


def _with_outbox_options(fn: Any) -> Any:
    for option in reversed(_outbox_options):
        fn = option(fn)
    return fn


@main.group()
def outbox() -> None:
    """Inspect and repair the outbox: list, show, retry, purge."""


@outbox.command("list")
@_with_outbox_options
@click.option("--state", type=click.Choice(["pending", "done", "dead", "merged"]), help="Only this state.")
@click.option("--limit", default=50, show_default=True)
def outbox_list(config_path: str | None, db: str | None, state: str | None, limit: int) -> None:
    """Jobs, newest first (one per notification and target)."""
    from alertmanager_wecom.outbox import JobState

    async def run() -> None:
        store = _open_outbox(config_path, db)
        try:
            stats = await store.stats(time.time())
            jobs = await store.list_jobs(JobState(state) if state else None, limit)
        finally:
            await store.close()
        click.echo(f"pending {stats.pending} (oldest {stats.oldest_pending_age:.0f}s), dead {stats.dead}")
        for job in jobs:
            click.echo(_job_line(job))

    asyncio.run(run())


@outbox.command("show")
@_with_outbox_options
@click.argument("job_id", type=int)
def outbox_show(config_path: str | None, db: str | None, job_id: int) -> None:
    """One job with its notification."""

    async def run() -> None:
        store = _open_outbox(config_path, db)
        try:
            job = await store.get_job(job_id)
        finally:
            await store.close()
        if job is None:
            raise click.ClickException(f"no job {job_id}")
        click.echo(_job_line(job))
        click.echo(json.dumps(json.loads(job.payload), ensure_ascii=False, indent=2))

    asyncio.run(run())


@outbox.command("retry")
@_with_outbox_options
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--all-dead", is_flag=True, help="Requeue every dead letter.")
def outbox_retry(config_path: str | None, db: str | None, job_ids: tuple[int, ...], all_dead: bool) -> None:
    """Requeue dead letters (after fixing the cause): JOB_IDS, or --all-dead."""
    if not job_ids and not all_dead:
        raise click.ClickException("give JOB_IDS or --all-dead")

    async def run() -> int:
        store = _open_outbox(config_path, db)
        try:
            return int(await store.requeue(None if all_dead else list(job_ids), time.time()))
        finally:
            await store.close()

    click.echo(f"requeued {asyncio.run(run())} job(s); a running service picks them up within a second")


@outbox.command("purge")
@_with_outbox_options
@click.option(
    "--state",
    "states",
    multiple=True,
    default=["done", "merged"],
    show_default=True,
    type=click.Choice(["done", "dead", "merged"]),
)
@click.option("--older-than", default="0s", show_default=True, help="Age, e.g. 7d, 24h.")
def outbox_purge(config_path: str | None, db: str | None, states: tuple[str, ...], older_than: str) -> None:
    """Delete finished jobs (never pending ones)."""
    from alertmanager_wecom.config import parse_duration
    from alertmanager_wecom.outbox import JobState

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> int:
        store = _open_outbox(config_path, db)
        try:
            return int(await store.purge([JobState(s) for s in states], time.time() - age))
        finally:
            await store.close()

    click.echo(f"purged {asyncio.run(run())} job(s)")
