"""`alertmanager-config`: the `receivers:` for Alertmanager's config, one webhook per receiver."""

from __future__ import annotations

from typing import Any

import click

from alertmanager_wecom.cli.common import load_or_exit
from alertmanager_wecom.config import Config

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


def receivers_for(config: Config, url: str, credentials_file: str, max_alerts: int) -> list[dict[str, Any]]:
    """Alertmanager's `receivers:` entries for the config's receivers: a webhook each, with its auth."""
    receivers = []
    for receiver in config.receivers:
        webhook: dict[str, Any] = {
            "url": f"{url.rstrip('/')}/alerts/{receiver.name}",
            "send_resolved": True,
            "max_alerts": max_alerts,
        }
        auth = config.auth_for(receiver)
        if auth is not None and auth.bearer_token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials_file": credentials_file}
            }
        elif auth is not None and auth.basic_auth is not None:
            webhook["http_config"] = {
                "basic_auth": {"username": auth.basic_auth.username, "password_file": credentials_file}
            }
        receivers.append({"name": receiver.name, "webhook_configs": [webhook]})
    return receivers


@click.command("alertmanager-config")
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
    config = load_or_exit(config_path)
    if max_alerts is None:
        max_alerts = max_alerts_for(config.server.max_body_bytes)
    receivers = receivers_for(config, url, credentials_file, max_alerts)
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
    if any(config.auth_for(r) is not None for r in config.receivers):
        click.echo(
            f"# Put the relay's token (or basic-auth password) in {credentials_file}, readable by Alertmanager."
        )
    click.echo(yaml.safe_dump({"receivers": receivers}, sort_keys=False, allow_unicode=True).rstrip())
