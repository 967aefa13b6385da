"""The render stage: a job's stored notification → the messages its target sends.

Parsing, merging and rendering are CPU work: `CpuWork` runs them in a thread, one at a time, so that
the event loop keeps answering webhooks with low latency while a storm is being digested.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from alertmanager_wecom.config import RobotTarget, Target
from alertmanager_wecom.config.contacts import form_of
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.ingest.payload import LARGE_BODY, Notification, collector_paused, parse_notification
from alertmanager_wecom.ingest.recipients import Budget, refusal, summarize
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.rendering.card import CardBuilder, CardState, needs_details, task_id_for
from alertmanager_wecom.rendering.message import Extras, Message
from alertmanager_wecom.rendering.renderer import Renderer

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class CpuWork:
    """Runs CPU-bound work in a thread, one call at a time.

    Parsing and rendering hold the GIL in turns of 5 ms; with one such thread per busy target (up to
    `workers`), the event loop queued behind all of them for each of its turns (/healthz took 100 ms
    while 50 notifications of 400 alerts were rendered). One at a time is as fast (the GIL lets one run
    anyway) and leaves the loop one thread to wait for."""

    def __init__(self) -> None:
        self._one = asyncio.Semaphore(1)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._one:
            return await asyncio.to_thread(fn, *args, **kwargs)


def paused_if_large(jobs: list[Job]) -> contextlib.AbstractContextManager[None]:
    """The collector paused while a large notification is parsed and rendered (see payload.py)."""
    large = any(len(job.payload) > LARGE_BODY for job in jobs)
    return collector_paused() if large else contextlib.nullcontext()


def describe(exc: BaseException) -> str:
    """An exception as one line for a dead letter: its type and message, bounded."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:300]}"


def parse(job: Job) -> Notification:
    return parse_notification(job.payload)  # in pieces when large: see payload.py


def parse_all(jobs: list[Job]) -> list[Notification | str]:
    """Each job's notification, or why it cannot be read."""
    out: list[Notification | str] = []
    for job in jobs:
        try:
            out.append(parse(job))
        except Exception as exc:
            out.append(f"cannot read the stored notification: {describe(exc)}")
    return out


@dataclass(frozen=True)
class CardContext:
    """What a template_card target's card needs beyond the notification: its task_id and what
    happened to its group so far (an acknowledgement shows on the next notifications)."""

    builder: CardBuilder
    task_id: str = "preview"
    state: CardState = field(default_factory=CardState)


def render_messages(
    target: Target,
    renderer: Renderer,
    notification: Notification,
    refused: Callable[[str], None] | None = None,
    card: CardContext | None = None,
    extras: Extras | None = None,
) -> list[Message]:
    """What one target sends for one notification (its resolved alerts dropped if send_resolved is off).
    `refused` hears, once per call, which mentions from alert data were refused and why.
    A template_card target sends its card, then detail messages when the card leaves alerts out."""
    if target.msgtype == "template_card" and card is not None:
        return card_messages(target, renderer, notification, card)
    sent = sendable(target, notification)
    if sent is None:
        return []
    notification = sent
    users, mobiles, problems = mentions_for(target, notification)
    shown = renderer.mentions_that_fit(users)
    if len(shown) < len(users):
        problems.append(f"{len(users) - len(shown)} mentions left out: they would take over half the message")
        users = shown
    if problems and refused is not None:
        refused(summarize(problems))
    return renderer.render(
        notification,
        max_messages=notification.digest_max_messages or None,
        mentions=(users, mobiles),
        extras=extras,
    )


def sendable(target: Target, notification: Notification) -> Notification | None:
    """The notification as the target sends it: without its resolved alerts when send_resolved is off
    (None: nothing left to send)."""
    if target.send_resolved:
        return notification
    firing = notification.firing
    return notification.model_copy(update={"alerts": firing}) if firing else None


def card_messages(
    target: Target, renderer: Renderer, notification: Notification, card: CardContext
) -> list[Message]:
    settings = card.builder.settings
    if notification.status == "resolved" and not (target.send_resolved and settings.resolved_message):
        return []  # the cards already sent turn "resolved" in place (actions/), no new message
    sent = sendable(target, notification)
    if sent is None:
        return []
    notification = sent
    built = card.builder.build(notification, card.task_id, card.state)
    title = str(built["main_title"]["title"])
    text = "\n".join([title, str(built.get("sub_title_text", ""))]).strip()
    messages = [Message("template_card", text, title=title, card=built)]
    if needs_details(notification, built):
        messages += renderer.render(notification, max_messages=notification.digest_max_messages or None)
    return messages


def mentions_for(target: Target, notification: Notification) -> tuple[list[str], list[str], list[str]]:
    """Who a robot message @mentions: the target's list (as written: may be @all) and, from the alerts'
    labels/annotations, values that are each exactly one valid userid, at most `max_mentions` of them.
    Returns (userids, mobiles, problems); nobody for the other channels' targets."""
    if not isinstance(target, RobotTarget):
        return [], [], []
    # mobile: mentions (checked at load: one number each, text messages only) go as WeCom takes them.
    users = [m for m in target.mention if form_of(m) is None]
    mobiles = [*target.mention_mobile, *(m.partition(":")[2] for m in target.mention if form_of(m))]
    problems: list[str] = []
    budget = Budget(target.max_mentions)
    for source in target.mention_from:
        where, _, name = source.partition(".")
        for alert in notification.alerts:
            value = (alert.labels if where == "labels" else alert.annotations).get(name, "").strip()
            if not value:
                continue  # nobody named: nothing to refuse
            why = refusal("mention", value)
            if why is not None:
                problems.append(f"{source} {why}")
            elif not budget.admit(value):
                problems.append(f"{source}: more than {budget.limit} distinct mentions (target max_mentions)")
            else:
                users.append(value)
    return list(dict.fromkeys(users)), list(dict.fromkeys(mobiles)), problems


def messages_for(
    route: TargetRoute,
    notification: Notification,
    job: Job | None = None,
    card: CardContext | None = None,
    quiet: bool = False,
    extras: Extras | None = None,
) -> list[Message]:
    """The messages for one notification. A user template that fails on these alerts (a label it
    expects is missing, say) is logged and the package's template shows them instead: the alerts
    matter more than their layout. `job`: the job being delivered (then refused mentions are logged).
    `quiet`: a render for display (the console), not a delivery: what its delivery logged is not logged
    again each time someone looks at it."""

    def refused(problems: str) -> None:
        if job is not None and not quiet:
            log.warning(
                "receiver %s job %d: mentions from alert data refused: %s", job.receiver, job.id, problems
            )

    if route.renders is not None:  # a channel that renders its own (a webhook's JSON)
        sent = sendable(route.target, notification)
        return route.renders(sent) if sent is not None else []
    if card is None and route.cards is not None:
        card = CardContext(route.cards)
    try:
        return render_messages(route.target, route.renderer, notification, refused, card, extras)
    except Exception as exc:
        if not route.renderer.custom_templates:
            raise
        if not quiet:
            log.error(
                "target %s: its template failed (%s); sent with the built-in template instead",
                route.channel.name,
                describe(exc),
            )
        return render_messages(
            route.target, route.renderer.with_builtin_templates(), notification, None, card, extras
        )


def render_job(
    route: TargetRoute,
    job: Job,
    notification: Notification | None = None,
    state: CardState | None = None,
    quiet: bool = False,
    extras: Callable[[Notification], Extras | None] | None = None,
) -> list[Message]:
    """The job's messages (`notification`: its payload, when already parsed; `state`: its card's group
    so far; `quiet`: for display, see `messages_for`). Raises when they cannot be rendered at all."""
    with paused_if_large([job]):
        notification = notification or parse(job)
        card = None
        if route.cards is not None:
            task_id = task_id_for(job.receiver, notification.group_key, job.id, job.created_at)
            card = CardContext(route.cards, task_id, state or CardState())
        added = extras(notification) if extras is not None else None  # on-call's (delivery/oncall.py)
        return messages_for(route, notification, job, card, quiet, added)


def count_messages(route: TargetRoute, jobs: list[Job]) -> tuple[int, list[tuple[Job, str]]]:
    """Messages the jobs need, and the jobs that cannot be rendered at all, with why."""
    total = 0
    failed: list[tuple[Job, str]] = []
    with paused_if_large(jobs):
        for job in jobs:
            try:
                total += len(messages_for(route, parse(job)))
            except Exception as exc:
                failed.append((job, f"cannot render: {describe(exc)}"))
    return total, failed
