"""`check-config` (the file alone) and `check` (the file against WeCom: token, trusted IP, a test message)."""

from __future__ import annotations

import asyncio
import sys

import click

from alertmanager_wecom.cli.common import exit_on_storage_problem, load_or_exit
from alertmanager_wecom.wecom.api import http_client


@click.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
def check_config(config_path: str) -> None:
    """Validate a config file (and compile its templates) without contacting WeCom."""
    config = load_or_exit(config_path)
    exit_on_storage_problem(config, create=False)
    targets = sum(len(r.targets) for r in config.receivers)
    click.echo(
        f"{config_path}: OK — {len(config.apps)} app(s), {len(config.receivers)} receiver(s), "
        f"{targets} target(s)"
    )


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--no-send", is_flag=True, help="Only check credentials; send no test message.")
def check(config_path: str, no_send: bool) -> None:
    """Get a token for each app, send a test message to each target, and explain each failure."""
    from alertmanager_wecom.channels.checks import run_checks

    config = load_or_exit(config_path)

    async def run() -> bool:
        async with http_client(config.wecom) as client:
            results = await run_checks(config, client, send=not no_send)
        for result in results:
            click.echo(result.line())
        return all(r.ok for r in results)

    if not asyncio.run(run()):
        sys.exit(1)
