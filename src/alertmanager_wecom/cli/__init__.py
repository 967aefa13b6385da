"""The `alertmanager-wecom` command: one module per command group; the work itself is the package's.

| module | commands |
|---|---|
| `serve` | serve (the sandbox when no config is given) |
| `simulator` | simulator, demo |
| `checks` | check-config, check |
| `send` | send, appchat create/show |
| `render` | render |
| `alertmanager_config` | alertmanager-config |
| `outbox` | outbox list/show/retry/purge |
| `oncall` | oncall who/list, oncall override add/list/remove |
| `incidents` | incidents list/show (timelines) |
| `init` | init (a checked config.yaml from the setup guide's values) |
"""

from __future__ import annotations

import sys

import click

from alertmanager_wecom import __version__
from alertmanager_wecom.cli import (
    alertmanager_config,
    checks,
    incidents,
    init,
    oncall,
    outbox,
    render,
    send,
    serve,
    simulator,
)
from alertmanager_wecom.cli.alertmanager_config import ALERT_BYTES, GROUP_BYTES, max_alerts_for
from alertmanager_wecom.cli.language import use_chinese, wanted
from alertmanager_wecom.logsetup import setup_logging

__all__ = ["ALERT_BYTES", "GROUP_BYTES", "main", "max_alerts_for"]


@click.group()
@click.version_option(__version__, prog_name="alertmanager-wecom")
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True
)
@click.option("--log-format", default="plain", type=click.Choice(["plain", "json"]), show_default=True)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _param, value: use_chinese(ctx.command) if value == "zh" else None,
    help="Language of the CLI's help: zh or en (default: from LANG).",
)
def main(log_level: str, log_format: str) -> None:
    """Deliver Alertmanager and Grafana alerts to WeCom (企业微信)."""
    setup_logging(log_level, json_lines=log_format == "json")


main.add_command(serve.serve)
main.add_command(checks.check_config)
main.add_command(simulator.simulator)
main.add_command(simulator.demo)
main.add_command(send.send)
main.add_command(checks.check)
main.add_command(render.render)
main.add_command(alertmanager_config.alertmanager_config)
main.add_command(send.appchat)
main.add_command(outbox.outbox)
main.add_command(oncall.oncall)
main.add_command(incidents.incidents)
main.add_command(init.init)
if wanted(sys.argv) == "zh":  # LANG=zh_CN.UTF-8, or --lang zh anywhere on the command line
    use_chinese(main)
