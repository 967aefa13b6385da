"""`send` (one message through an app) and `appchat create|show` (the app chats a target can name)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import httpx

from alertmanager_wecom.cli.common import load_or_exit, read_text
from alertmanager_wecom.config import Config, validate_target
from alertmanager_wecom.wecom.api import http_client
from alertmanager_wecom.wecom.token import AccessToken


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--app", "app_name", required=True, help="App name from the config's apps.")
@click.option(
    "--to", "to_user", multiple=True, help="userid, email:ADDRESS or mobile:NUMBER (repeat, or @all)."
)
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
    from alertmanager_wecom.channels import build_channel, token_for
    from alertmanager_wecom.channels.text import send_text
    from alertmanager_wecom.wecom.api import WeComAPI, WeComError
    from alertmanager_wecom.wecom.lookup_check import resolve_written
    from alertmanager_wecom.wecom.userid import UserIds

    config = load_or_exit(config_path)
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
    content = read_text(text).strip()
    if not content:
        raise click.ClickException("nothing to send: give TEXT or pipe it on stdin")

    async def run() -> None:
        async with http_client(config.wecom) as client:
            api = WeComAPI(config.wecom.api_url, client)
            tokens: dict[str, AccessToken] = {}
            token_for(app_name, config, api, tokens)
            # email:/mobile: recipients: their userids; one that finds nobody stops the send.
            found, problems = await resolve_written(target, tokens, UserIds(config.wecom))
            if problems:
                raise click.ClickException("; ".join(problems))
            channel = build_channel(found, config, api, tokens)
            sent = 0
            try:
                async for result in send_text(channel, content, msgtype):
                    sent += 1
                    for key, names in result.invalid.items():
                        click.echo(
                            f"warning: WeCom skipped {key.removeprefix('invalid')} {'|'.join(names)}",
                            err=True,
                        )
            except WeComError as exc:
                raise click.ClickException(exc.detail) from None
            click.echo(f"sent {sent} message(s) to {channel.name}")

    asyncio.run(run())


@click.group()
def appchat() -> None:
    """Create or show an app chat (群聊会话) that a target can send to with `chat: CHATID`."""


def _app_token(config: Config, app_name: str, client: httpx.AsyncClient) -> AccessToken:
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
    from alertmanager_wecom.wecom.appchat import create_app_chat

    config = load_or_exit(config_path)

    async def run() -> str:
        async with http_client(config.wecom) as client:
            token = _app_token(config, app_name, client)
            try:
                return await create_app_chat(token, name, list(users), owner=owner, chatid=chatid)
            except WeComError as exc:
                raise click.ClickException(exc.detail) from None

    created = asyncio.run(run())
    click.echo(f"created app chat {created}; send to it with a target {{app: {app_name}, chat: {created}}}")


@appchat.command("show")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--app", "app_name", required=True)
@click.argument("chatid")
def appchat_show(config_path: str, app_name: str, chatid: str) -> None:
    from alertmanager_wecom.wecom.api import WeComError
    from alertmanager_wecom.wecom.appchat import get_app_chat

    config = load_or_exit(config_path)

    async def run() -> dict[str, Any]:
        async with http_client(config.wecom) as client:
            token = _app_token(config, app_name, client)
            try:
                return await get_app_chat(token, chatid)
            except WeComError as exc:
                raise click.ClickException(exc.detail) from None

    info = asyncio.run(run())
    click.echo(
        f"chat {info.get('chatid')}: {info.get('name')!r}, owner {info.get('owner')}, "
        f"members {', '.join(info.get('userlist', []))}"
    )
