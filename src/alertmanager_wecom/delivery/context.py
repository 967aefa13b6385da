"""What the delivery stages share: one `Services` per dispatcher, handed to each stage when it is made.

Time (`clock`, `sleep`) and chance (`jitter`) are injected so that pacing, backoff and digests are
tested without waiting (tests/test_dispatcher.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from alertmanager_wecom.actions.cards import CardActions
from alertmanager_wecom.config import DeliverySettings
from alertmanager_wecom.delivery.pacing import RateLimiter
from alertmanager_wecom.delivery.render import CpuWork
from alertmanager_wecom.delivery.routes import Route
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import Job, Outbox
from alertmanager_wecom.tracing import OFF, Tracing


def _jitter() -> float:
    # Targets and replicas do not retry in step.
    return random.uniform(0.5, 1.0)


def _never() -> bool:
    return False


class ChartMaker(Protocol):
    """The charts after alerts (delivery/charts.py), as the delivery stages see them."""

    def after(self, job: Job, route: Route, notification: Notification) -> None: ...

    async def drain(self) -> None: ...


@dataclass
class Services:
    outbox: Outbox
    settings: DeliverySettings  # replaced on a config reload
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[], float] = _jitter  # the fraction of a backoff delay actually waited
    stopping: Callable[[], bool] = _never  # shutting down: stop between messages
    limiter: RateLimiter = field(init=False)
    cpu: CpuWork = field(default_factory=CpuWork)
    # Targets held back until a time (after a transient failure), by target key.
    cooldown: dict[str, float] = field(default_factory=dict)
    # Alert cards (msgtype template_card): what they remember and redraw; None without a callback app.
    cards: CardActions | None = None
    # Charts after the alerts' text (targets with `chart: true`); set by the dispatcher.
    charts: ChartMaker | None = None
    # Spans of each job's delivery and its stages (tracing/); the relay sets it when tracing is on.
    tracing: Tracing = OFF

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.clock)
