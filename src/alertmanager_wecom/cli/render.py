"""`render`: a payload as each target's messages, exactly as they would be sent, with their byte counts."""

from __future__ import annotations

import json
from typing import Any

import click

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.cli.common import load_or_exit
from alertmanager_wecom.config import parse_target
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering.renderer import Renderer, TemplateError


@click.command()
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
    type=click.Choice(["text", "markdown", "textcard", "template_card"]),
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
        config = load_or_exit(config_path)
    else:
        config = parse_config(
            {
                "apps": {
                    "app": {
                        "corp_id": "ww",
                        "agent_id": 1,
                        "secret": "unused-for-render",
                        # Cards need a callback; these values are not used to render.
                        "callback": {"token": "unused-for-render", "encoding_aes_key": "A" * 43},
                    }
                },
                "render": {"alertmanager_url": "http://alertmanager:9093"},
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
    from alertmanager_wecom.delivery.render import CardContext, render_messages
    from alertmanager_wecom.ingest.routing import Router
    from alertmanager_wecom.rendering.card import builder_for

    out: list[dict[str, Any]] = []
    raw = notification.model_dump_json(by_alias=True)
    for job in Router(config).route(chosen.name, notification, raw):
        target = parse_target(job.target)
        where = kind_of(target).describe(target)
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
            card = CardContext(builder_for(target, config)) if target.msgtype == "template_card" else None
            messages = render_messages(
                target,
                Renderer.for_target(target, config),
                Notification.model_validate_json(job.payload),
                card=card,
            )
        except TemplateError as exc:
            raise click.ClickException(str(exc)) from None
        limit = fit.content_limit(target.msgtype, robot=target.robot is not None)
        for number, message in enumerate(messages, 1):
            if message.card is not None:
                shown = json.dumps(message.card, ensure_ascii=False, indent=2)
                out.append(
                    {
                        "target": where,
                        "message": number,
                        "of": len(messages),
                        "msgtype": message.msgtype,
                        "bytes": byte_len(json.dumps(message.card, ensure_ascii=False)),
                        "limit": 0,
                        "title": "",
                        "content": shown,
                        "card": message.card,
                    }
                )
                continue
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
        shown_limit = f"/{item['limit']}" if item["limit"] else ""
        click.echo(
            f"--- {item['target']} · message {item['message']}/{item['of']} · {item['msgtype']} · "
            f"{item['bytes']}{shown_limit} bytes ---"
        )
        if item.get("mentions"):
            click.echo(f"(mentioned_list: {', '.join(item['mentions'])})")
        if item["title"]:
            click.echo(item["title"])
        click.echo(item["content"])
    if not out:
        click.echo("(no messages: nothing to send for this payload and these targets)")
