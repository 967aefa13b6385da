"""What the outbox contract asks for replicas, for a backend only one process opens (SQLite): there is
nobody to share targets with, and the webhook that commits a notification wakes the dispatcher itself."""

from __future__ import annotations

from collections.abc import Callable

from alertmanager_wecom.outbox.base import OutboxUnavailable


class OneProcess:
    shared = False
    _closed: bool

    async def lease(self, target_key: str, owner: str, seconds: float) -> bool:
        if self._closed:
            raise OutboxUnavailable("the outbox is closed")
        return True

    async def release(self, target_key: str, owner: str) -> None:
        return None

    async def listen(self, on_new: Callable[[list[str]], None]) -> None:
        return None
