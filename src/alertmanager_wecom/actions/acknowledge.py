"""Acknowledging an alert group, whichever way it is done: a card's 认领 button, a signed link in a text
or markdown message, the console, `POST /api/ack`. Every way ends the same: the incident is acknowledged
(escalation stops at its next step: delivery/oncall.py), its cards show who, and the audit log and the
incident's timeline say who and how.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from alertmanager_wecom.actions.cards import CardActions
from alertmanager_wecom.actions.groups import card_groups
from alertmanager_wecom.actions.store import CardRecord
from alertmanager_wecom.config import Config, target_spec
from alertmanager_wecom.config.targets import EscalationMark
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.oncall.store import Incident, IncidentEvent, OncallStore, group_id

log = logging.getLogger(__name__)

Outcome = Literal["acknowledged", "already", "resolved", "unknown"]


@dataclass(frozen=True)
class AckResult:
    outcome: Outcome
    incident: Incident | None = None

    @property
    def message(self) -> str:
        incident = self.incident
        if self.outcome == "unknown" or incident is None:
            return "no such incident (resolved long ago, or never opened)"
        if self.outcome == "resolved":
            return f"{incident.title}: already resolved"
        if self.outcome == "already":
            return f"{incident.title}: already acknowledged by {incident.acknowledged_by}"
        return f"{incident.title}: acknowledged"


class Acknowledgements:
    def __init__(
        self,
        store: Callable[[], OncallStore | None],
        cards: Callable[[], CardActions | None],
        config: Callable[[], Config],
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._cards = cards
        self._config = config
        self.metrics = metrics
        self.clock = clock

    def plug_into(self, cards: CardActions) -> None:
        """A card's 认领 and silences reach the incident too."""
        cards.on_ack = self.from_card
        cards.on_silenced = self.silenced

    async def acknowledge(self, receiver: str, group: str, user: str, how: str) -> AckResult:
        """Acknowledge the group's incident (`group`: its `group_id`) as `user`, made `how` (link, console,
        api, cli); its cards are redrawn to show it."""
        store = self._store()
        if store is None:
            return AckResult("unknown")
        incident = await store.current(receiver, group)
        if incident is None:
            return AckResult("unknown")
        if incident.resolved_at is not None:
            return AckResult("resolved", incident)
        now = self.clock()
        if not await store.acknowledge(incident.id, user, how, now):
            return AckResult("already", await store.incident(incident.id) or incident)
        self.metrics.time_to_acknowledge.labels(receiver).observe(max(0.0, now - incident.started_at))
        log.info("receiver %s: incident %s acknowledged by %s (%s)", receiver, incident.id, user, how)
        await self._redraw_cards(incident, user, now)
        return AckResult("acknowledged", await store.incident(incident.id) or incident)

    async def from_card(self, record: CardRecord, user: str, groups: list[str] | None = None) -> None:
        """A card's 认领 (the card itself is redrawn by its click); a digest's, each group's (`groups`:
        the card's, `card_groups`, when the click has them already)."""
        store = self._store()
        if store is None:
            return
        for group in groups if groups is not None else await card_groups(record):
            incident = await store.current(record.receiver, group_id(group))
            if incident is None or incident.resolved_at is not None:
                continue
            now = self.clock()
            if await store.acknowledge(incident.id, user, "card", now):
                self.metrics.time_to_acknowledge.labels(record.receiver).observe(
                    max(0.0, now - incident.started_at)
                )
                await self._redraw_cards(incident, user, now, but=record.task_id)

    async def silenced(self, record: CardRecord, user: str, detail: str) -> None:
        """A silence made from a card: escalation stops (a digest's card: for each group it merged)."""
        store = self._store()
        if store is None:
            return
        for group in await card_groups(record):
            incident = await store.current(record.receiver, group_id(group))
            if incident is not None and incident.resolved_at is None:
                await store.silenced(incident.id, user, self.clock(), detail)

    async def note(self, incident: Incident, event: IncidentEvent) -> None:
        store = self._store()
        if store is not None:
            await store.add_event(incident.id, event)

    async def _redraw_cards(self, incident: Incident, user: str, now: float, but: str = "") -> None:
        """Every open card of the group shows who acknowledged it (and new cards do: the card store's
        acknowledgement)."""
        cards = self._cards()
        if cards is None:
            return
        try:
            await cards.store.ack(incident.receiver, incident.group_key, user, now)
            for record in await self._open_cards(cards, incident):
                if record.task_id == but:
                    continue
                state = dataclasses.replace(record.state, acked_by=user, acked_at=now, failure="")
                await cards.redraw(record, state)
        except Exception as exc:  # the acknowledgement stands; only the cards lag
            log.warning("incident %s acknowledged, its cards not redrawn: %s", incident.id, exc)

    async def _open_cards(self, cards: CardActions, incident: Incident) -> list[CardRecord]:
        config = self._config()
        receiver = config.receiver(incident.receiver)
        if receiver is None:
            return []
        targets = list(receiver.targets)
        policy = config.oncall.escalations.get(incident.policy or "")
        if policy is not None:  # a step's cards are stored with its mark (ingest/escalation.py)
            for round_, index, after in policy.due_offsets():
                for ordinal, target in enumerate(policy.steps[index].targets):
                    mark = EscalationMark(
                        policy=incident.policy or "",
                        round=round_,
                        step=index,
                        after=after,
                        target=ordinal,
                    )
                    targets.append(target.model_copy(update={"escalation_step": mark}))
        specs = {target_spec(t) for t in targets if t.msgtype == "template_card"}
        found: list[CardRecord] = []
        for spec in specs:
            found += await cards.store.open_cards(incident.receiver, incident.group_key, spec)
        return found
