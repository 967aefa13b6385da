"""`simulator` (a WeCom simulator on its own) and `demo` (posts sample alerts to a running relay)."""

from __future__ import annotations

import sys
from typing import Any

import click
import httpx

from alertmanager_wecom import samples
from alertmanager_wecom.cli.common import parse_listen
from alertmanager_wecom.web.hosts import AllowedHosts, HostPolicy
from alertmanager_wecom.web.serving import run_server


@click.command()
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
    "--inbox-per-recipient",
    type=int,
    help="Messages each person's inbox keeps, the newest (default 500; a benchmark counting all: more).",
)
@click.option(
    "--trusted-ip",
    "trusted_ips",
    multiple=True,
    help="Only these caller IPs may send (others get 60020); repeat for several.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Also answer requests for this host name (the simulator's name in a compose file or cluster;"
    " *.example.com for subdomains); localhost and the listen address always. Repeat for several.",
)
def simulator(
    listen: str,
    config_path: str | None,
    token_ttl: int | None,
    fault_rate: float | None,
    fault_kinds: str | None,
    slow_seconds: float | None,
    fault_seed: int | None,
    inbox_per_recipient: int | None,
    trusted_ips: tuple[str, ...],
    allowed_hosts: tuple[str, ...],
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
        if inbox_per_recipient is not None:
            update["inbox_per_recipient"] = inbox_per_recipient
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
    # The simulator's own made-up credentials (not WeCom's): what `check`, `send` and a config's
    # `apps:`/`robots:` need to talk to it, so a user can copy them.
    for corp in settings.corps:
        click.echo(f"  corp_id {corp.corp_id}  users {', '.join(corp.users)}")
        for app in corp.apps:
            click.echo(f"    app: agent_id {app.agent_id}  secret {app.secret}")
    for name, key in settings.robots.items():
        click.echo(f"  robot {name}: key {key}")
    # Only its own hosts, as the service (web/hosts.py): a web page whose name resolves to 127.0.0.1 (DNS
    # rebinding) could otherwise read the inbox and change the faults from a developer's browser.
    policy = HostPolicy.build(allowed_hosts, host, None)
    run_server(AllowedHosts(create_simulator_app(settings), policy), host, port, "warning")


@click.command()
@click.option("--url", default="http://127.0.0.1:9095", show_default=True, help="The relay's base URL.")
@click.option("--receiver", default="demo", show_default=True)
def demo(url: str, receiver: str) -> None:
    """Post sample alerts to a running relay (a small group, a mixed group, 100 alerts, then resolved)."""
    # Another group (group_by: [alertname, cluster]): it stays firing, so that the sandbox escalates it.
    large = samples.node_down(100, receiver=receiver, cluster="prod-sh")
    large["groupKey"] = '{}:{alertname="NodeDown", cluster="prod-sh"}'
    large["groupLabels"] = {"alertname": "NodeDown", "cluster": "prod-sh"}
    payloads = [
        ("2 NodeDown alerts", samples.node_down(2, receiver=receiver)),
        ("a mixed group (firing and resolved)", samples.mixed(receiver=receiver)),
        ("a group of 100 alerts", large),
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
    click.echo(
        "in a minute the sandbox escalates the group still firing to the person on call (`oncall who`);"
        " press 认领 on zhaoliu's card, or the link in a message, to stop it; /ui/incidents shows the timeline"
    )
    if failed:
        sys.exit(1)
