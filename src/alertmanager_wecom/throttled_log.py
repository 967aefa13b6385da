"""Log lines at a bounded rate: what a stranger can trigger at will (refused hosts, refused callbacks)
must not let them fill the disk or drown the lines that matter."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    """At most `burst` lines per `period` seconds; the first line after a quiet spell says how many
    were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        period: float = 60.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.period = period
        self.burst = burst
        self.clock = clock
        self._window_start = -float("inf")
        self._written = 0
        self._left_out = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> bool:
        """Log `message` at warning level unless over the rate; True when it was written."""
        with self._lock:
            now = self.clock()
            if now - self._window_start >= self.period:
                self._window_start, self._written = now, 0
            if self._written >= self.burst:
                self._left_out += 1
                return False
            self._written += 1
            left_out, self._left_out = self._left_out, 0
        if left_out:
            message += " (%d more like this were not logged)"
            args = (*args, left_out)
        self.logger.warning(message, *args)
        return True
