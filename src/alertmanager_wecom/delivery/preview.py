"""The preview: what a payload becomes for one configured target, as messages with their byte counts,
optionally with a template being edited in place of the target's own. Pure and synchronous: the console
runs it in its preview worker process (web/preview_worker.py), where a runaway template can be killed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from alertmanager_wecom.config import Config
from alertmanager_wecom.delivery.render import CardContext, render_messages
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.card import builder_for
from alertmanager_wecom.rendering.environment import templates_from_source
from alertmanager_wecom.rendering.renderer import Renderer


@dataclass(frozen=True)
class ShownMessage:
    msgtype: str
    content: str
    bytes: int
    limit: int
    title: str = ""
    card: dict[str, Any] | None = None


@dataclass(frozen=True)
class Preview:
    messages: list[ShownMessage]
    error: str = ""


def shown(messages: list[Any], limit: int) -> list[ShownMessage]:
    out = []
    for message in messages:
        if message.card is not None:
            body = json.dumps(message.card, ensure_ascii=False)
            out.append(
                ShownMessage("template_card", message.content, fit.byte_len(body), 0, card=message.card)
            )
        else:
            text = f"{message.title}\n{message.content}" if message.msgtype == "textcard" else message.content
            out.append(
                ShownMessage(message.msgtype, text, fit.byte_len(message.content), limit, message.title)
            )
    return out


def preview(config: Config, payload: str, receiver: str, index: int, template: str | None) -> Preview:
    """What `render` prints for a payload and one configured target, with `template` instead of the
    target's own when given (the console's editor). Every error is the answer, never raised."""
    chosen = config.receiver(receiver)
    if chosen is None or not 0 <= index < len(chosen.targets):
        return Preview([], "choose a receiver and one of its targets")
    target = chosen.targets[index]
    try:
        notification = Notification.model_validate(json.loads(payload))
    except (ValueError, RecursionError) as exc:
        return Preview(
            [], f"the payload is not an Alertmanager webhook body: {' '.join(str(exc).split())[:300]}"
        )
    try:
        renderer = Renderer.for_target(target, config)
        if template is not None:
            renderer.templates = templates_from_source(template, target.msgtype)
        card = CardContext(builder_for(target, config)) if target.msgtype == "template_card" else None
        messages = render_messages(target, renderer, notification, card=card)
    except Exception as exc:  # the template's own failure is the preview's answer
        return Preview([], f"{type(exc).__name__}: {exc}")
    return Preview(shown(messages, fit.content_limit(target.msgtype, robot=target.robot is not None)))
