"""One sliding-window counter for every limit the simulated WeCom applies: per member (30 a minute and
1000 an hour per app), per group robot (20 a minute), per app chat (200 a minute)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable


class SlidingWindows:
    """Sends per key, each key limited by every (count, seconds) window given."""

    def __init__(self, *windows: tuple[int, float]) -> None:
        self.windows = windows
        self._longest = max(seconds for _, seconds in windows)
        self._sends: defaultdict[Hashable, deque[float]] = defaultdict(deque)

    def take(self, key: Hashable, now: float) -> int | None:
        """Record one send for `key` at `now` if every window has room; else record nothing and return
        the index of the first full window. A send `seconds` old has left its window."""
        sends = self._sends[key]
        while sends and now - sends[0] >= self._longest:
            sends.popleft()
        for index, (limit, seconds) in enumerate(self.windows):
            inside = len(sends) if seconds == self._longest else sum(1 for t in sends if now - t < seconds)
            if inside >= limit:
                return index
        sends.append(now)
        return None
