"""The preview: what a payload becomes, as messages with their byte counts. One preview for every place
that shows one: the CLI's `render` (each target of a receiver, routed as the webhook routes), the
console's live template editor (one target, with the template being edited), and a delivery opened in
the console (web/console_data.py). Pure and synchronous: the console runs the editor's in its preview
worker process (web/preview_worker.py), where a runaway template can be killed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.config import Config, Target, parse_target
from alertmanager_wecom.delivery.render import CardContext, render_messages, sendable
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.ingest.routing import Router
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
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preview:
    messages: list[ShownMessage]
    error: str = ""


@dataclass(frozen=True)
class TargetPreview:
    target: str  # as its channel describes it
    messages: list[ShownMessage]
    undeliverable: str = ""  # why the alerts routed to it cannot be sent (a refused recipient, …)


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
            shown_message = ShownMessage(
                message.msgtype, text, fit.byte_len(message.content), limit, message.title
            )
            out.append(dataclasses.replace(shown_message, mentions=tuple(message.mentions)))
    return out


def limit_of(target: Target, config: Config) -> int:
    """The byte limit of the target's messages, as its channel has it."""
    return kind_of(target).content_limit(target, config)


def render_target(
    config: Config, target: Target, notification: Notification, template: str | None = None
) -> list[ShownMessage]:
    """The messages `notification` becomes for `target` (with `template` instead of its own when
    given). Raises TemplateError."""
    limit = limit_of(target, config)
    own = kind_of(target).renders(target, config)
    if own is not None:  # a channel that renders its own (a webhook's JSON)
        sent = sendable(target, notification)
        return shown(own(sent) if sent is not None else [], limit)
    renderer = Renderer.for_target(target, config, limit)
    if template is not None:
        renderer.templates = templates_from_source(template, target.msgtype)
    card = CardContext(builder_for(target, config)) if target.msgtype == "template_card" else None
    return shown(render_messages(target, renderer, notification, card=card), limit)


def preview_receiver(config: Config, receiver: str, notification: Notification) -> list[TargetPreview]:
    """Each target's messages for `notification`, routed as the webhook routes it (matchers, templated
    recipients): what `render` prints. Raises TemplateError."""
    out = []
    raw = notification.model_dump_json(by_alias=True)
    for job in Router(config).route(receiver, notification, raw):
        target = parse_target(job.target_spec)
        where = kind_of(target).describe(target)
        if job.dead_reason:
            out.append(TargetPreview(where, [], job.dead_reason))
            continue
        out.append(
            TargetPreview(where, render_target(config, target, Notification.model_validate_json(job.payload)))
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
        return Preview(render_target(config, target, notification, template))
    except Exception as exc:  # the template's own failure is the preview's answer
        return Preview([], f"{type(exc).__name__}: {exc}")
