"""The simulated WeCom's behaviour, without HTTP: tokens, errcodes, truncation, limits, inboxes.

Every handler takes what WeCom would see (query parameters, body bytes, the caller's IP) and
returns what WeCom would answer.  Time comes from an injected clock so that token expiry and rate
windows are tested without sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from alertmanager_wecom.simulator.access import Access
from alertmanager_wecom.simulator.app_chats import AppChats
from alertmanager_wecom.simulator.app_messages import AppMessages
from alertmanager_wecom.simulator.common import InboxEntry, Reply, Token
from alertmanager_wecom.simulator.directory import Directory
from alertmanager_wecom.simulator.limits import SlidingWindows
from alertmanager_wecom.simulator.model import Fault, Faults, SimulatorSettings
from alertmanager_wecom.simulator.robots import Robots

__all__ = ["InboxEntry", "Reply", "SimulatorState"]


class SimulatorState(Access, AppMessages, Robots, AppChats, Directory):
    """The simulated WeCom: one object, one lock, every endpoint family (a mixin each)."""

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._random = random.Random(settings.faults.seed)
        self.callback_apps: set[int] = set()  # apps whose callback URL WeCom verified and saved
        self.reset()

    # -- admin ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.tokens: dict[str, Token] = {}
            self.issued_tokens: list[str] = []  # every token ever handed out, for leak tests
            self.inbox: list[InboxEntry] = []
            self.trimmed: dict[str, int] = {}
            self._kept: dict[str, int] = {}
            self.suppressed_duplicates = 0
            self.calls: dict[str, int] = defaultdict(int)
            self.errors: dict[str, int] = defaultdict(int)
            self.faults_injected: dict[str, int] = {}
            settings = self.settings
            # Checked in this order: the hour's limit is named first when both are reached.
            self._member_sends = SlidingWindows(
                (settings.member_per_hour, 3600), (settings.member_per_minute, 60)
            )
            self._robot_sends = SlidingWindows((settings.robot_per_minute, 60))
            self._chat_sends = SlidingWindows((200, 60))
            self.chats: dict[str, dict[str, Any]] = {}
            self._recent_bodies: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
            self._next_id = 1
            self.card_tasks: dict[tuple[int, str], list[str]] = {}
            self.card_codes: dict[str, tuple[int, str, float]] = {}
            self.media: dict[str, tuple[bytes, str, float]] = {}

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self.tokens)
            self.tokens.clear()
            return count

    def set_faults(self, faults: Faults) -> None:
        self.settings = self.settings.model_copy(update={"faults": faults})
        self._random = random.Random(faults.seed)

    def set_trusted_ips(self, agent_id: int, ips: list[str] | None) -> bool:
        for corp in self.settings.corps:
            for app in corp.apps:
                if app.agent_id == agent_id:
                    app.trusted_ips = ips
                    return True
        return False

    def pick_fault(self) -> Fault | None:
        faults = self.settings.faults
        if faults.rate <= 0 or not faults.kinds:
            return None
        with self._lock:
            if self._random.random() >= faults.rate:
                return None
            fault = self._random.choice(faults.kinds)
            self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            return fault

    def stats(self) -> dict[str, Any]:
        with self._lock:
            visible = [e for e in self.inbox if e.dropped is None]
            return {
                "calls": dict(self.calls),
                "errors": dict(self.errors),
                "faults_injected": dict(self.faults_injected),
                "messages": len(self.inbox),
                "delivered": len(visible),
                "dropped": len(self.inbox) - len(visible),
                "truncated": sum(1 for e in visible if e.truncated),
                "trimmed": sum(self.trimmed.values()),  # older than each person's newest kept
                "suppressed_duplicates": self.suppressed_duplicates,
                "active_tokens": len(self.tokens),
            }

    def entries(self, recipient: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self.inbox if recipient is None or e.recipient == recipient]

    def trimmed_count(self, recipient: str | None = None) -> int:
        """How many of `recipient`'s (everyone's) oldest messages are no longer kept."""
        with self._lock:
            return sum(self.trimmed.values()) if recipient is None else self.trimmed.get(recipient, 0)
