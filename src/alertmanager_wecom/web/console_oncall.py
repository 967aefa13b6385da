"""What the console's on-call pages show (值班 and 事件), gathered from the on-call store and shaped for the
templates: each schedule's now, next and four weeks laid out by day on the schedule's own clock, the
overrides, and the incidents with their status and timeline. No HTML here (the templates escape every
value: titles and names are alert data, hostile); the time-to-acknowledge chart is console_chart.py's."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.outlook import outlook
from alertmanager_wecom.oncall.overrides import MOST_AHEAD
from alertmanager_wecom.oncall.schedule import Shift, local, wall_to_instant, zone
from alertmanager_wecom.oncall.store import Incident, OncallStore, Override

CALENDAR_DAYS = 28
OPEN_SHOWN = 200  # open incidents listed (all of them, unless something is very wrong)
RECENT_SHOWN = 100  # closed incidents listed after them


@dataclass(frozen=True)
class Segment:
    """Part of one day: `user` holds it from `start` ("HH:MM" on the schedule's clock)."""

    user: str
    start: str
    override: str | None = None


@dataclass(frozen=True)
class Day:
    date: dt.date
    today: bool
    segments: list[Segment]


@dataclass(frozen=True)
class ShownShift:
    user: str
    start: str  # "YYYY-MM-DD HH:MM" on the schedule's clock
    end: str
    override: str | None


@dataclass(frozen=True)
class ShownOverride:
    id: str
    schedule: str
    user: str
    start: str
    end: str
    time_zone: str
    created_by: str


@dataclass(frozen=True)
class ScheduleView:
    name: str
    schedule: Schedule
    now: ShownShift | None
    next: ShownShift | None
    weeks: list[list[Day | None]]  # Monday to Sunday; None: outside the four weeks


def _wall(schedule: Schedule, at: float) -> str:
    return local(schedule, at).strftime("%Y-%m-%d %H:%M")


def shown_shift(schedule: Schedule, shift: Shift | None) -> ShownShift | None:
    if shift is None:
        return None
    return ShownShift(shift.user, _wall(schedule, shift.start), _wall(schedule, shift.end), shift.override)


def calendar(
    schedule: Schedule, shifts: list[Shift], at: float, days: int = CALENDAR_DAYS
) -> list[list[Day | None]]:
    """`days` days from `at`'s day (on the schedule's clock), in weeks from Monday: who holds each day,
    from when. A day's first segment is whoever holds it at its start (today: now); each hand-off inside
    the day starts a segment. Days are the wall clock's: 23 or 25 hours across a DST change."""
    tz = zone(schedule)
    first = local(schedule, at).date()
    out: list[Day] = []
    for i in range(days):
        date = first + dt.timedelta(days=i)
        begins = max(at, wall_to_instant(dt.datetime.combine(date, dt.time()), tz))
        ends = wall_to_instant(dt.datetime.combine(date + dt.timedelta(days=1), dt.time()), tz)
        segments = [
            Segment(s.user, local(schedule, max(s.start, begins)).strftime("%H:%M"), s.override)
            for s in shifts
            if s.start < ends and s.end > begins
        ]
        out.append(Day(date, i == 0, segments))
    padded: list[Day | None] = [None] * first.weekday() + list(out)
    padded += [None] * (-len(padded) % 7)
    return [padded[k : k + 7] for k in range(0, len(padded), 7)]


def shown_override(override: Override, schedule: Schedule | None) -> ShownOverride:
    def wall(at: float) -> str:
        return _wall(schedule, at) if schedule is not None else str(at)

    return ShownOverride(
        override.id,
        override.schedule,
        override.user,
        wall(override.start),
        wall(override.end),
        schedule.time_zone if schedule is not None else "",
        override.created_by,
    )


async def schedules(
    store: OncallStore, configured: dict[str, Schedule], now: float
) -> tuple[list[ScheduleView], list[ShownOverride]]:
    """Every schedule's view at `now`, and the overrides in force now or later (every schedule's)."""
    views = []
    for name, schedule in sorted(configured.items()):
        seen = await outlook(store, name, schedule, now, CALENDAR_DAYS)
        views.append(
            ScheduleView(
                name,
                schedule,
                shown_shift(schedule, seen.now),
                shown_shift(schedule, seen.next),
                calendar(schedule, seen.shifts, now),
            )
        )
    found = await store.overrides(None, now, now + 2 * MOST_AHEAD)
    return views, [shown_override(o, configured.get(o.schedule)) for o in found]


# -- incidents -----------------------------------------------------------------------------------------

_LEVEL = re.compile(r"^level (\d+)(?:, round (\d+))?$")


@dataclass(frozen=True)
class ShownEvent:
    at: str
    kind: str  # opened | notified | escalated | skipped | acknowledged | silenced | resolved
    who: list[str]
    how: str
    detail: str
    level: int | None = None  # escalated: the step's level (how, read)
    round: int | None = None


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    started: str
    states: list[str]  # acknowledged | silenced | resolved | escalating | open
    can_ack: bool
    acknowledged: str  # when, on the people's clock ("" when not)
    events: list[ShownEvent] = field(default_factory=list)


def wall_clock(at: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S")


def states(incident: Incident) -> list[str]:
    """What the incident's status line says, most telling first."""
    out = []
    if incident.acknowledged_at is not None:
        out.append("acknowledged")
    if incident.silenced_at is not None:
        out.append("silenced")
    if incident.resolved_at is not None:
        out.append("resolved")
    if not out:
        out.append("escalating" if incident.policy else "open")
    return out


def incident_view(incident: Incident, tz: ZoneInfo) -> IncidentView:
    events = []
    for e in incident.events:
        matched = _LEVEL.match(e.how) if e.kind == "escalated" else None
        events.append(
            ShownEvent(
                wall_clock(e.at, tz),
                e.kind,
                list(e.who),
                e.how,
                e.detail,
                int(matched.group(1)) if matched else None,
                int(matched.group(2)) if matched and matched.group(2) else None,
            )
        )
    return IncidentView(
        incident,
        wall_clock(incident.started_at, tz),
        states(incident),
        incident.open and incident.acknowledged_at is None and incident.silenced_at is None,
        wall_clock(incident.acknowledged_at, tz) if incident.acknowledged_at is not None else "",
        events,
    )


def ordered(open_ones: list[Incident], recent: list[Incident]) -> list[Incident]:
    """The open incidents first (newest first), then the closed ones of `recent` (a page of the whole
    list, newest first: its first RECENT_SHOWN), each once."""
    seen = {i.id for i in open_ones}
    rest = [i for i in recent[:RECENT_SHOWN] if i.id not in seen and not i.open]
    return sorted(open_ones, key=lambda i: -i.started_at) + rest
