"""What the console's pages show, gathered from the running relay: the outbox, the dispatcher's limiter
and routes, the metrics, the card store, the config (secrets masked). No HTML here (web/console.py)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.delivery.job_description import JobDescription, describe_job
from alertmanager_wecom.delivery.preview import ShownMessage, limit_of, shown
from alertmanager_wecom.delivery.render import render_job
from alertmanager_wecom.outbox import Job, JobState
from alertmanager_wecom.web.relay import Relay
from alertmanager_wecom.wecom import errcodes

SEARCHED = 2000  # the newest jobs a search looks through (a page stays fast with 100,000 in the outbox)


def counter_values(counter: Counter) -> list[tuple[dict[str, str], float]]:
    out = []
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out.append((dict(sample.labels), float(sample.value)))
    return out


@dataclass
class Overview:
    received: dict[str, float]
    sent: float
    failed: float
    pending: int
    dead: int
    oldest_pending: float
    sent_last_hour: int
    rooms: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


async def overview(relay: Relay) -> Overview:
    now = relay.clock()
    received: dict[str, float] = {}
    for labels, value in counter_values(relay.metrics.notifications):
        received[labels.get("status", "?")] = received.get(labels.get("status", "?"), 0.0) + value
    sent = sum(v for _, v in counter_values(relay.metrics.messages_sent))
    failed = sum(v for _, v in counter_values(relay.metrics.messages_failed))
    pending = dead = 0
    oldest = 0.0
    sent_last_hour = 0
    if relay.outbox is not None:
        stats = await relay.outbox.stats(now)
        pending, dead, oldest = stats.pending, stats.dead, stats.oldest_pending_age
        sent_last_hour = len({at for _, at in await relay.outbox.recent_sends(now - 3600)})
    rooms = []
    dispatcher = relay.dispatcher
    if dispatcher is not None:
        limiter = dispatcher.limiter
        for receiver in relay.config.receivers:
            for target in receiver.targets:
                if target.templated_recipients:
                    continue
                try:
                    keys = [
                        key
                        for key, _ in kind_of(target).rate_windows(
                            target, relay.config, relay.config.delivery
                        )
                    ]
                except KeyError:
                    continue
                rooms.append(
                    {
                        "receiver": receiver.name,
                        "target": kind_of(target).describe(target),
                        "room": limiter.available(keys),
                        "capacity": limiter.capacity(keys),
                        "wait": round(limiter.wait_time(keys), 1),
                    }
                )
    errors = []
    for labels, value in counter_values(relay.metrics.wecom_errors):
        code = labels.get("errcode", "")
        info = errcodes.classify(int(code)) if code.lstrip("-").isdigit() else None
        errors.append(
            {
                "errcode": code,
                "count": int(value),
                "meaning": info.meaning if info else "",
                "fix": info.fix if info else "",
            }
        )
    return Overview(received, sent, failed, pending, dead, oldest, sent_last_hour, rooms, errors)


async def search(relay: Relay, query: str, state: str | None, limit: int = 200) -> list[JobDescription]:
    """Jobs whose receiver, target, people or alert names contain `query` (case-insensitive), newest
    first, among the newest `SEARCHED` (of a state, when given)."""
    if relay.outbox is None:
        return []
    chosen = JobState(state) if state else None
    jobs = await relay.outbox.list_jobs(chosen, SEARCHED)
    needle = query.strip().lower()

    def matches(job: Job) -> bool:
        if not needle:
            return True
        return (
            needle in job.receiver.lower()
            or needle in job.target_spec.lower()
            or needle in job.payload[:200_000].lower()
        )

    return await asyncio.to_thread(lambda: [describe_job(j) for j in jobs if matches(j)][:limit])


async def job_messages(relay: Relay, job: Job) -> tuple[list[ShownMessage], str]:
    """The job's messages as they are (or were) sent, or why they cannot be shown."""
    if relay.dispatcher is None:
        return [], "the dispatcher is not running"
    try:
        route = relay.dispatcher.routes.get(job.target_spec)
        # Quiet: its delivery already logged what the render found wrong; a look is not a delivery.
        messages = await asyncio.to_thread(render_job, route, job, quiet=True)
    except Exception as exc:
        return [], f"cannot render: {type(exc).__name__}: {exc}"
    return shown(messages, limit_of(route.target, relay.config)), ""


def masked_config(relay: Relay) -> str:
    """The running config as YAML-ish JSON, every secret shown as ********** (Secret's own dump)."""
    data = relay.config.model_dump(mode="json", exclude={"base_dir"})
    return json.dumps(data, ensure_ascii=False, indent=2)


def payload_of(job: Job) -> str:
    try:
        return json.dumps(json.loads(job.payload), ensure_ascii=False, indent=2)[:200_000]
    except ValueError:
        return job.payload[:200_000]


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
