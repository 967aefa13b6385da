"""`Readiness`: what `SQLiteOutbox.check_writable` answers. A test write through the webhooks' path
(`accept.probe`), bounded in time and shared by concurrent callers, plus what failed writes taught:
the outbox full for the last refused notification, or its pages corrupt (`pages`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from alertmanager_wecom.outbox.base import OutboxUnavailable
from alertmanager_wecom.outbox.sqlite.pages import is_corruption

log = logging.getLogger(__name__)

# How long a test write may take, and how long its result is reused.
PROBE_SECONDS = 2.0
PROBE_REUSE_SECONDS = 1.0
FULL = "database or disk is full"  # SQLite's SQLITE_FULL

# The probe: (now, check_pages) → the bytes the outbox can still grow by; raises OutboxUnavailable.
Probe = Callable[[float, bool], Awaitable[int]]


class Readiness:
    def __init__(self, probe: Probe, damage: str | None = None) -> None:
        self._run_probe = probe
        self._probe: asyncio.Task[int] | None = None
        self._probe_at = 0.0
        self._full_need: int | None = None  # bytes the last notification refused as "full" needed
        # Why the pages are thought corrupt (quick_check at start, or a write that met them); while
        # set, each probe runs quick_check, and one that passes clears it.
        self.damage = damage
        if damage is not None:
            log.error("%s", damage)

    def refused(self, error: str, need: int | None = None) -> None:
        """A write failed with `error`; `need`: the bytes the notification it would have stored needed."""
        if need is not None and FULL in error:
            # Readiness stays failed until there is room for this notification again.
            self._full_need = max(self._full_need or 0, need)
        if is_corruption(error) and self.damage is None:
            self.damage = error
            log.error("%s; readiness fails until quick_check passes", error)

    async def check(self, now: float) -> str | None:
        """Why a webhook could not be committed now (corrupt or missing file, no write access, the
        ingest writer failing, locked for longer than PROBE_SECONDS, full), or None. Concurrent callers
        share one probe, and a result is reused for PROBE_REUSE_SECONDS."""
        started = time.monotonic()  # not `now`: an injected clock may stand still
        if self._probe is None or (self._probe.done() and started - self._probe_at >= PROBE_REUSE_SECONDS):
            self._probe_at = started
            self._probe = asyncio.get_running_loop().create_task(self._checked_probe(now))
        try:
            room = await asyncio.wait_for(asyncio.shield(self._probe), PROBE_SECONDS)
        except TimeoutError:
            # quick_check of a large file can outlast the bound: what is known is the better reason.
            return self.damage or (
                f"the outbox did not complete a test write within {PROBE_SECONDS:g}s (another process"
                " holds its lock, or the disk stalls)"
            )
        except OutboxUnavailable as exc:
            return str(exc)
        need = self._full_need
        if need is not None:
            if room < need:
                return (
                    f"the outbox is full ({room} bytes free, the last refused notification needed {need}):"
                    " raise storage.max_size_mb or free disk space, or purge delivered jobs"
                    " (alertmanager-wecom outbox purge)"
                )
            self._full_need = None
        return None

    async def _checked_probe(self, now: float) -> int:
        damage = self.damage
        room = await self._run_probe(now, damage is not None)
        if damage is not None and self.damage is damage:
            log.warning("the outbox's pages pass quick_check again: ready")
            self.damage = None
        return room
