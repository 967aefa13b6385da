"""`Repeated`: one log line a minute for a failure that repeats, not one per call.

During an outage (Redis stopped, unreachable, or frozen) every webhook, dispatcher round and readiness
probe fails the same way, many times a second; a line for each buries what is wrong. The first failure
is logged at once; then one line a minute saying it still fails and how often; the first success
after it, once, how long it lasted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

EVERY_SECONDS = 60.0


class Repeated:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what  # the failing thing, for the lines: "Redis", "the outbox"
        self._every = every
        self._clock = clock
        self._since: float | None = None  # when the failures began; None: not failing
        self._logged_at = 0.0
        self._unlogged = 0  # failures since the last line
        self._failures = 0

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, reason: str) -> None:
        now = self._clock()
        self._failures += 1
        if self._since is None:
            self._since, self._logged_at, self._unlogged = now, now, 0
            self._log.error("%s unavailable: %s", self._what, reason)
        elif now - self._logged_at >= self._every:
            self._log.error(
                "%s still unavailable after %.0fs (%d more failures since the last line): %s",
                self._what,
                now - self._since,
                self._unlogged + 1,
                reason,
            )
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1

    def succeeded(self) -> None:
        if self._since is None:
            return
        self._log.warning(
            "%s available again after %.0fs (%d failures)",
            self._what,
            self._clock() - self._since,
            self._failures,
        )
        self._since, self._failures = None, 0
