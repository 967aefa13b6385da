"""What the delivery stages share: one `Services` per dispatcher, handed to each stage when it is made.

Time (`clock`, `sleep`) and chance (`jitter`) are injected so that pacing, backoff and digests are
tested without waiting (tests/test_dispatcher.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertmanager_wecom.config import DeliverySettings, Target
from alertmanager_wecom.delivery.pacing import RateLimiter
from alertmanager_wecom.delivery.render import CpuWork
from alertmanager_wecom.delivery.routes import TargetRoute
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import Job, Outbox
from alertmanager_wecom.rendering.card import CardState
from alertmanager_wecom.rendering.message import Extras
from alertmanager_wecom.tracing import OFF, Tracing


def _jitter() -> float:
    # Targets and replicas do not retry in step.
    return random.uniform(0.5, 1.0)


def _never() -> bool:
    return False


class CardHooks(Protocol):
    """What delivery asks of whoever keeps the alert cards (actions/cards.py plugs in here): delivery
    defines it, so that it never imports what acts on clicks."""

    async def state_for(self, receiver: str, group_key: str) -> CardState:
        """What a new card of the group shows from the start (who acknowledged it)."""
        ...

    async def quiet_reason(self, receiver: str, target: Target, notification: Notification) -> str | None:
        """Why a repeat of the group is held back (acknowledged), or None."""
        ...

    async def sent(
        self,
        app: str,
        receiver: str,
        target: str,
        job_id: int,
        payload: str,
        group_key: str,
        card: dict[str, Any],
        code: str,
    ) -> None:
        """A card reached WeCom (remember it, and its response code)."""
        ...

    async def group_resolved(self, receiver: str, target: str, group_key: str) -> None:
        """The group resolved: its cards may turn "resolved"."""
        ...

    async def maintain(self, now: float) -> None:
        """The maintenance round: what is past its retention goes."""
        ...

    def later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background, its failure logged: never on delivery's path."""
        ...


class ChartMaker(Protocol):
    """The charts after alerts (delivery/charts.py), as the delivery stages see them."""

    def after(self, job: Job, route: TargetRoute, notification: Notification) -> None: ...

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
    owner: str = ""  # the name this process holds leases under (replicas: see claims.py)
    limiter: RateLimiter = field(init=False)
    cpu: CpuWork = field(default_factory=CpuWork)
    # Targets held back until a time (after a transient failure), by target key.
    cooldown: dict[str, float] = field(default_factory=dict)
    # Alert cards (msgtype template_card): what they remember and redraw; None without a callback app.
    cards: CardHooks | None = None
    # Charts after the alerts' text (targets with `chart: true`); set by the dispatcher.
    charts: ChartMaker | None = None
    # Spans of each job's delivery and its stages (tracing/); the relay sets it when tracing is on.
    tracing: Tracing = OFF
    # Told of every job delivered (the incidents' timelines: delivery/oncall.py); never blocks.
    delivered: Callable[[Job, TargetRoute, Notification | None], None] | None = None
    # What on-call adds to a job's first message (its escalation step, an acknowledge link), from its
    # notification: delivery/oncall.py.
    extras: Callable[[Job, TargetRoute], Callable[[Notification], Extras | None] | None] | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.clock)
