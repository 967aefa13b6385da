"""The delivery stage: one notification for one receiver → rendered messages → channels.

It retries transient failures with exponential backoff and jitter within a time budget and reports
what is left as `Outcome`; the caller decides what that means (today: the webhook answers 503 so
that Alertmanager retries; with a durable outbox, the dispatcher reschedules).  Parts already
delivered are remembered for an hour, so a retried notification does not repeat them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from alertmanager_wecom.channels import Channel, build_channel
from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.errcodes import Action, ErrInfo, Reason
from alertmanager_wecom.message import Message
from alertmanager_wecom.payload import Notification
from alertmanager_wecom.rendering import Renderer
from alertmanager_wecom.token_cache import AccessToken
from alertmanager_wecom.wecom_api import WeComAPI, WeComError

log = logging.getLogger("alertmanager_wecom.delivery")

BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0
SENT_MEMORY_SECONDS = 3600.0
SENT_MEMORY_ENTRIES = 20000


@dataclass
class TargetOutcome:
    target: str
    messages: int = 0  # messages delivered (or already delivered by an earlier attempt)
    error: WeComError | None = None


@dataclass
class Outcome:
    targets: list[TargetOutcome] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.targets)

    @property
    def transient(self) -> list[TargetOutcome]:
        return [t for t in self.targets if t.error is not None and t.error.retryable]

    @property
    def permanent(self) -> list[TargetOutcome]:
        return [t for t in self.targets if t.error is not None and not t.error.retryable]


@dataclass
class Route:
    target: Target
    renderer: Renderer
    channel: Channel


class _SentMemory:
    """Keys of messages WeCom accepted recently, oldest first, bounded in time and size."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        at = self._entries.get(key)
        return at is not None and self.clock() - at < SENT_MEMORY_SECONDS

    def add(self, key: str) -> None:
        self._entries[key] = self.clock()
        self._entries.move_to_end(key)
        while len(self._entries) > SENT_MEMORY_ENTRIES:
            self._entries.popitem(last=False)


class Delivery:
    def __init__(
        self,
        config: Config,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.api = WeComAPI(config.wecom.api_url, client)
        self.tokens: dict[str, AccessToken] = {}
        self.clock = clock
        self.sleep = sleep
        self.routes: dict[str, list[Route]] = {
            receiver.name: [
                Route(t, Renderer.for_target(t, config), build_channel(t, config, self.api, self.tokens))
                for t in receiver.targets
            ]
            for receiver in config.receivers
        }
        self._sent = _SentMemory(clock)

    async def deliver(self, receiver: str, notification: Notification) -> Outcome:
        routes = self.routes[receiver]
        deadline = self.clock() + self.config.server.retry_budget_seconds
        results = await asyncio.gather(*(self._deliver_route(r, notification, deadline) for r in routes))
        outcome = Outcome(list(results))
        for result in outcome.targets:
            self._log(receiver, result)
        return outcome

    def messages_for(self, route: Route, notification: Notification) -> list[Message]:
        if not route.target.send_resolved:
            firing = notification.firing
            if not firing:
                return []
            notification = notification.model_copy(update={"alerts": firing})
        return route.renderer.render(notification)

    async def _deliver_route(
        self, route: Route, notification: Notification, deadline: float
    ) -> TargetOutcome:
        result = TargetOutcome(route.channel.name)
        try:
            messages = self.messages_for(route, notification)
        except Exception as exc:  # a user template failing at run time must not fail the request
            log.exception("rendering failed for %s", route.channel.name)
            result.error = WeComError(
                ErrInfo(Action.PERMANENT, Reason.BAD_MESSAGE, "template error"), f"template error: {exc}"
            )
            return result
        for message in messages:
            key = hashlib.sha256(
                (route.channel.name + json.dumps(message.body(), ensure_ascii=False, sort_keys=True)).encode()
            ).hexdigest()
            if key in self._sent:
                result.messages += 1
                continue
            try:
                await self._send_with_retry(route.channel, message, deadline)
            except WeComError as exc:
                result.error = exc
                return result
            self._sent.add(key)
            result.messages += 1
        return result

    async def _send_with_retry(self, channel: Channel, message: Message, deadline: float) -> None:
        attempt = 0
        while True:
            try:
                sent = await channel.send(message)
            except WeComError as exc:
                if not exc.retryable:
                    raise
                attempt += 1
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: replicas and targets do not retry in step
                if self.clock() + delay > deadline:
                    raise
                log.info(
                    "transient failure to %s (%s), retry %d in %.2fs",
                    channel.name,
                    exc.reason.value,
                    attempt,
                    delay,
                )
                await self.sleep(delay)
                continue
            for key, names in sent.invalid.items():
                log.warning(
                    "WeCom did not deliver to %s %s via %s: not found or outside the app's "
                    "visible range (可见范围)",
                    key.removeprefix("invalid"),
                    "|".join(names),
                    channel.name,
                )
            return

    def _log(self, receiver: str, result: TargetOutcome) -> None:
        if result.error is None:
            log.info("delivered receiver=%s target=%s messages=%d", receiver, result.target, result.messages)
        elif result.error.retryable:
            log.warning(
                "delivery failed, will retry receiver=%s target=%s messages=%d reason=%s: %s",
                receiver,
                result.target,
                result.messages,
                result.error.reason.value,
                result.error.detail,
            )
        else:
            log.error(
                "delivery failed permanently receiver=%s target=%s messages=%d reason=%s: %s",
                receiver,
                result.target,
                result.messages,
                result.error.reason.value,
                result.error.detail,
            )
