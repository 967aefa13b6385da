"""WeCom's frequency limits, applied before sending, because WeCom drops what is over them silently.

Limits are per key: an app member (30/min and 1000/h per app per member), a robot (20/min), an app's
daily quota.  A message to several members counts for each of them, so a target may send only when
every one of its keys has room.  Limits are applied with headroom (default 10 %), and the record of
recent sends is persisted by the dispatcher so that a restart does not reset the windows.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict, deque
from collections.abc import Callable

from alertmanager_wecom.channels.base import Window


class RateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._sends: dict[str, deque[float]] = defaultdict(deque)
        self._windows: dict[str, tuple[Window, ...]] = {}

    def configure(self, key: str, windows: tuple[Window, ...]) -> None:
        self._windows[key] = windows

    def windows(self, key: str) -> tuple[Window, ...]:
        return self._windows.get(key, ())

    def _prune(self, key: str, now: float) -> deque[float]:
        sends = self._sends[key]
        horizon = max((w.seconds for w in self._windows.get(key, ())), default=0.0)
        while sends and now - sends[0] >= horizon:
            sends.popleft()
        return sends

    def available(self, keys: list[str]) -> int:
        """How many messages every key allows now."""
        now = self.clock()
        room = math.inf
        for key in keys:
            sends = self._prune(key, now)
            for window in self._windows.get(key, ()):
                used = sum(1 for t in sends if t > now - window.seconds)
                room = min(room, window.limit - used)
        if room == math.inf:
            return 10**9
        return max(0, int(room))

    def capacity(self, keys: list[str]) -> int:
        """The smallest window limit of these keys: how many messages a fresh minute carries."""
        limits = [w.limit for key in keys for w in self._windows.get(key, ())]
        return min(limits) if limits else 10**9

    def wait_time(self, keys: list[str]) -> float:
        """Seconds until every key has room for one more message."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            sends = self._prune(key, now)
            for window in self._windows.get(key, ()):
                inside = [t for t in sends if now - t < window.seconds]
                if len(inside) >= window.limit:
                    # the oldest send that must leave the window for one slot to open
                    oldest = inside[len(inside) - window.limit]
                    wait = max(wait, oldest + window.seconds - now)
        return wait

    def record(self, keys: list[str], at: float | None = None) -> float:
        at = self.clock() if at is None else at
        for key in keys:
            sends = self._sends[key]
            if sends and sends[-1] > at:  # restored history may arrive out of order
                items = sorted([*sends, at])
                sends.clear()
                sends.extend(items)
            else:
                sends.append(at)
        return at

    def load(self, key: str, sends: list[float]) -> None:
        """Replace what is known of `key`'s sends (the shared ledger, when another replica sent for it)."""
        self._sends[key] = deque(sorted(sends))

    def forget(self, keys: list[str], at: float) -> None:
        """Undo `record` for a message WeCom did not accept (it does not count against the limit)."""
        for key in keys:
            with contextlib.suppress(ValueError):
                self._sends[key].remove(at)
