"""What people ask of a schedule (the CLI's `oncall who|list`, the API, the console): who is on call
now, who is next, and the calendar ahead, with the overrides the store has for that stretch."""

from __future__ import annotations

from dataclasses import dataclass

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.overrides import MOST_SECONDS
from alertmanager_wecom.oncall.schedule import Rotation, Shift, next_shift, on_call, shifts
from alertmanager_wecom.oncall.store import OncallStore, Override

DAY = 86400.0


@dataclass(frozen=True)
class Outlook:
    name: str
    schedule: Schedule
    at: float
    now: Shift | None
    next: Shift | None
    shifts: list[Shift]  # [at, at + days), merged where the same person goes on
    overrides: list[Override]  # those that overlap the calendar's stretch


async def outlook(store: OncallStore, name: str, schedule: Schedule, at: float, days: float = 28) -> Outlook:
    """`name`'s shift at `at`, the next one, and the shifts of the `days` after `at`.

    The overrides read are those that could matter: an override lasts at most MOST_SECONDS, so one in
    force at `at` began within that much before it, and one that cuts it began within that much before
    that; ahead, as far as the calendar and the next rotation shift reach, and one override more."""
    rotation = Rotation(schedule)
    k = rotation.index_at(at)
    current_start = rotation.boundary(k) if k is not None else at
    ahead = rotation.boundary(k + 2 if k is not None else 1)
    start = min(current_start, at - 2 * MOST_SECONDS)
    end = max(at + days * DAY, ahead) + MOST_SECONDS
    found = await store.overrides(name, start, end)
    mine = [o for o in found if o.schedule == name]
    return Outlook(
        name=name,
        schedule=schedule,
        at=at,
        now=on_call(schedule, at, mine),
        next=next_shift(schedule, at, mine),
        shifts=shifts(schedule, at, at + days * DAY, mine),
        overrides=[o for o in mine if o.start < at + days * DAY and o.end > at],
    )
