"""The card store's contract: what acting on alerts from WeCom must remember, durably and shared by every
replica: the cards sent (to redraw them for everyone), their response codes (each updates a card once,
within 72 h; taking one is one atomic step, so two replicas never spend the same code), acknowledgements
per group, the callback events already taken (a replay or WeCom's retry, to whichever replica, does
nothing), locks on a group (two clicks on one group, on two replicas, act one after the other) and an
audit log of every action. Kept for a stated time and purged in the dispatcher's maintenance round.

Backends: SQLite (`sqlite_store.py`, a file beside the outbox, one process) and Redis (`redis_store.py`,
the outbox's Redis, replicas), chosen by `storage.backend`; one contract suite runs on both
(tests/test_card_store_contract.py). It is written a few times per click or card, never on the
webhook's path.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from alertmanager_wecom.rendering.card import CardState

CODE_LIFETIME = 72 * 3600.0  # WeCom: a response_code works once, within 72 hours


@dataclass(frozen=True)
class CardRecord:
    task_id: str
    app: str
    receiver: str
    target: str  # the target's spec, as stored with its jobs
    group_key: str
    job_id: int
    payload: str  # the notification the card shows
    card: dict[str, Any]  # the card as last drawn
    state: CardState
    resolved: bool
    created_at: float


@dataclass(frozen=True)
class ActionRecord:
    id: int
    at: float
    app: str
    user: str
    action: str
    task_id: str
    outcome: str
    detail: str


def state_from_json(text: str) -> CardState:
    """A stored CardState; fields it no longer has are dropped (an older version wrote them)."""
    known = {f.name for f in dataclasses.fields(CardState)}
    return CardState(**{k: v for k, v in json.loads(text).items() if k in known})


def state_to_json(state: CardState) -> str:
    return json.dumps(dataclasses.asdict(state))


class CardStore(abc.ABC):
    """What every backend keeps. Times are the caller's clock (seconds since 1970)."""

    # -- cards ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_card(self, card: CardRecord) -> None:
        """Remember a card sent (a card with the same task id is replaced)."""

    @abc.abstractmethod
    async def card(self, task_id: str) -> CardRecord | None: ...

    @abc.abstractmethod
    async def open_cards(self, receiver: str, group_key: str, target: str) -> list[CardRecord]:
        """The group's cards on one target that do not show "resolved" yet, oldest first."""

    @abc.abstractmethod
    async def redrawn(self, task_id: str, card: dict[str, Any], state: CardState, resolved: bool) -> None:
        """The card as drawn now, and the state it shows."""

    @abc.abstractmethod
    async def list_cards(self, limit: int = 100) -> list[CardRecord]:
        """The newest cards first."""

    # -- response codes -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_code(self, task_id: str, code: str, at: float) -> None:
        """A response code for the card (from its send or a click); one already used stays used."""

    @abc.abstractmethod
    async def take_code(self, task_id: str, now: float) -> str | None:
        """The newest unused code of the card younger than 72 h, marked used, in one atomic step."""

    # -- acknowledgements -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def ack(self, receiver: str, group_key: str, user: str, at: float) -> None: ...

    @abc.abstractmethod
    async def ack_of(self, receiver: str, group_key: str) -> tuple[str, float] | None:
        """Who acknowledged the group, and when."""

    @abc.abstractmethod
    async def clear_ack(self, receiver: str, group_key: str) -> None:
        """A resolved group starts afresh: its next firing is nobody's yet."""

    # -- callbacks and clicks -------------------------------------------------------------------------
    @abc.abstractmethod
    async def first_time(self, key: str, at: float, keep: float) -> bool:
        """Whether the event `key` is new (then it is remembered for `keep` seconds), atomically."""

    @abc.abstractmethod
    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        """Take the lock `name` for `owner` for at most `seconds` (it expires: a replica that died
        holding it does not hold it forever); False when someone else holds it."""

    @abc.abstractmethod
    async def unlock(self, name: str, owner: str) -> None:
        """Give the lock up, if `owner` holds it."""

    # -- audit ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def record(
        self, at: float, app: str, user: str, action: str, task_id: str, outcome: str, detail: str
    ) -> None: ...

    @abc.abstractmethod
    async def actions(self, limit: int = 100) -> list[ActionRecord]:
        """The newest actions first."""

    # -- retention and life ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge(self, now: float, card_keep: float, audit_keep: float) -> int:
        """Forget cards (with their codes) and acknowledgements older than WeCom's 72 h plus
        `card_keep`, and audit entries older than `audit_keep`; how many cards went."""

    @abc.abstractmethod
    async def close(self) -> None: ...
