"""`render`: a payload as each target's messages, exactly as they would be sent, with their byte counts."""

from __future__ import annotations

import json
from typing import Any

import click

from alertmanager_wecom.cli.common import load_or_exit
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering.renderer import TemplateError


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
    from alertmanager_wecom.delivery.preview import preview_receiver

    try:
        previews = preview_receiver(config, chosen.name, notification)
    except TemplateError as exc:
        raise click.ClickException(str(exc)) from None
    out: list[dict[str, Any]] = []
    for target in previews:
        if target.undeliverable:
            out.append(
                {
                    "target": target.target,
                    "message": 0,
                    "of": 0,
                    "msgtype": "",
                    "bytes": 0,
                    "limit": 0,
                    "title": "",
                    "content": f"(not deliverable: {target.undeliverable})",
                }
            )
        for number, message in enumerate(target.messages, 1):
            item: dict[str, Any] = {
                "target": target.target,
                "message": number,
                "of": len(target.messages),
                "msgtype": message.msgtype,
                "bytes": message.bytes,
                "limit": message.limit,
                "title": message.title,
                "content": message.content,
            }
            if message.card is not None:
                item["content"] = json.dumps(message.card, ensure_ascii=False, indent=2)
                item["card"] = message.card
            else:
                item["mentions"] = list(message.mentions)
            out.append(item)
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
        click.echo(item["content"])  # a textcard's title is its first line
    if not out:
        click.echo("(no messages: nothing to send for this payload and these targets)")
