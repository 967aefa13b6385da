"""`init`: the setup guide in one command. Takes the values the guide collects by hand, checks each
against WeCom as it goes (the same checks as `check`, each failure explained), and only then writes a
commented config.yaml that references the secret by environment variable or file, never inline.

With every value given as a flag it runs without asking (scripts, the first hour with the simulator);
on a terminal it asks for what is missing (cli/init_prompts.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from alertmanager_wecom.channels.checks import run_checks
from alertmanager_wecom.cli import init_prompts as prompts
from alertmanager_wecom.cli.alertmanager_config import max_alerts_for, receivers_for
from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.config.models import DEFAULT_API_URL, WeComSettings
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.wecom.api import http_client

_HEADER = """\
# alertmanager-wecom configuration, written by `alertmanager-wecom init`.
# The app's values are from WeCom's admin console:
#   corp_id   My Company → Company Information → Company ID (企业ID)
#   agent_id  App Management → Apps → <your app> → AgentId
#   secret    the same page → Secret → View; kept out of this file: {secret_hint}
# verify_files (if any): served at https://<your domain>/<file name>, so that WeCom can verify the trusted
#   domain (可信域名) before you add this host's IP as a trusted IP (企业可信IP).
# Check it with `alertmanager-wecom check --config {path}`; README.md lists every setting.
"""


@click.command()
@click.option("--corp-id", help="Company ID (My Company → Company Information).")
@click.option("--agent-id", type=click.IntRange(min=1), help="The app's AgentId.")
@click.option("--secret-env", help="Name of the environment variable that holds the app's Secret.")
@click.option(
    "--secret-file", type=click.Path(dir_okay=False), help="File that holds the app's Secret (one line)."
)
@click.option("--to-user", "to_users", multiple=True, help="userid to send alerts to (repeat).")
@click.option(
    "--robot-key-file",
    type=click.Path(dir_okay=False),
    help="File with a group robot's key: alerts go there too.",
)
@click.option("--api-url", default=DEFAULT_API_URL, show_default=True, help="WeCom's API, or a simulator's.")
@click.option("--output", default="config.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option(
    "--url", default="http://127.0.0.1:9095", show_default=True, help="The service's URL, for Alertmanager."
)
@click.option(
    "--no-check", is_flag=True, help="Write the file without asking WeCom (no token, no test message)."
)
@click.option(
    "--verify-file",
    "verify_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="WeCom's WW_verify_*.txt for the trusted domain: served at the root (repeat).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option(
    "--lang", type=click.Choice(["zh", "en"]), help="Language of the questions (default: from LANG)."
)
def init(
    corp_id: str | None,
    agent_id: int | None,
    secret_env: str | None,
    secret_file: str | None,
    to_users: tuple[str, ...],
    robot_key_file: str | None,
    api_url: str,
    output: str,
    url: str,
    no_check: bool,
    verify_files: tuple[str, ...],
    force: bool,
    lang: str | None,
) -> None:
    """Write a checked config.yaml from the values the setup guide collects (non-interactive)."""
    path = Path(output)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    wecom = WeComSettings(api_url=api_url)
    app: dict[str, Any]
    interactive = corp_id is None or agent_id is None or not to_users
    if interactive:
        if not sys.stdin.isatty():
            raise click.ClickException(
                "give --corp-id, --agent-id, --secret-env or --secret-file and --to-user, or run init on a"
                " terminal to be asked for them"
            )
        t = prompts.TEXTS[prompts.language(lang)]
        corp_id, agent_id, secret = prompts.ask_credentials(t, wecom)
        to_users = tuple(u.strip() for u in click.prompt(t["to_user"]).split("|") if u.strip())
        app = {"corp_id": corp_id, "agent_id": agent_id, **prompts.store_secret(t, secret)}
        verify_files = verify_files or tuple(prompts.ask_verify_files(t))
    else:
        assert corp_id is not None and agent_id is not None
        if (secret_env is None) == (secret_file is None):
            raise click.ClickException(
                "give the app's Secret with --secret-env NAME or --secret-file PATH (one)"
            )
        if secret_env is not None and not os.environ.get(secret_env):
            raise click.ClickException(
                f"environment variable {secret_env} is not set (it holds the app's Secret)"
            )
        app = {"corp_id": corp_id, "agent_id": agent_id}
        if secret_env is not None:
            app["secret"] = f"${{{secret_env}}}"
        else:
            app["secret_file"] = str(Path(secret_file or "").resolve())
    targets: list[dict[str, Any]] = [{"app": "ops", "to_user": list(to_users)}]
    raw: dict[str, Any] = {"wecom": {"api_url": api_url}, "apps": {"ops": app}}
    if robot_key_file is not None:
        raw["robots"] = {"team": {"key_file": str(Path(robot_key_file).resolve())}}
        targets.append({"robot": "team"})
    raw["receivers"] = [{"name": "default", "targets": targets}]
    for given in verify_files:
        problem = prompts.verify_file_problem(Path(given))
        if problem is not None:
            raise click.ClickException(problem)
    if verify_files:
        # Served at the domain's root, byte for byte: WeCom fetches it to verify the trusted domain.
        raw["verify_files"] = [str(Path(v).resolve()) for v in verify_files]
    try:
        config = parse_config(raw, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise click.ClickException(f"these values do not make a valid config:\n{exc}") from None
    if not no_check:

        async def checked() -> tuple[bool, bool]:
            async with http_client(config.wecom) as client:
                results = await run_checks(config, client)
            for result in results:
                click.echo(result.line())
            return all(r.ok for r in results), any("60020" in r.message for r in results)

        while True:
            ok, untrusted_ip = asyncio.run(checked())
            if ok:
                break
            # The IP must be added in the console by hand; on a terminal, wait for that and try again.
            if (
                interactive
                and untrusted_ip
                and click.prompt(t["retry_ip"], default="", show_default=False) != "q"
            ):
                continue
            click.echo(
                f"not written: fix the above, then run init again ({path} would be unchanged)", err=True
            )
            sys.exit(1)
    reference = app.get("secret", "")
    hint = f"read from {reference}" if reference else f"read from {app['secret_file']}"
    text = _HEADER.format(secret_hint=hint, path=path) + yaml.safe_dump(
        raw, sort_keys=False, allow_unicode=True
    )
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}")
    click.echo("\nAlertmanager's receivers (add them to alertmanager.yml and route alerts to `default`):")
    receivers = receivers_for(
        config, url, "/etc/alertmanager/wecom-relay.secret", max_alerts_for(config.server.max_body_bytes)
    )
    click.echo(yaml.safe_dump({"receivers": receivers}, sort_keys=False, allow_unicode=True).rstrip())
    click.echo(f"\nStart the service: alertmanager-wecom serve --config {path}")
