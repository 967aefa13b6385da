"""Who is on call when: a schedule's rotation, cut by overrides. Pure: times in, shifts out (seconds
since 1970, as the store keeps them); no clock, no I/O.

The rotation: members take turns in order, members[0] first. Its first hand-off is `start`'s hand-off:
the day `start` at the hand-off time for daily and duration rotations; for weekly ones the first day on
or after `start` that is the hand-off's weekday (a weekly hand-off without a weekday: `start`'s own).
Daily and weekly hand-offs follow the wall clock of `time_zone`: across a DST change a shift lasts 23
or 25 hours; a hand-off time that does not exist that day (in the gap of a spring-forward) moves to the
first instant after the gap; one that exists twice (a fall-back) is the first of the two. A duration
rotation (e.g. 12h) counts elapsed time from the first hand-off, whatever the wall clock says.

Before the first hand-off the rotation names nobody (None): a schedule that has not begun must not page
members[0] for a time nobody agreed to. Overrides apply there too: they are explicit.

Overrides: one that covers an instant wins over the rotation; of two that overlap, the one created last
wins (then the larger id, so that every replica decides alike).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.store import Override


@dataclass(frozen=True)
class Shift:
    """`user` is on call from `start` to `end` (seconds since 1970, end excluded); `override` is the id
    of the override that put them there, None for the rotation."""

    user: str
    start: float
    end: float
    override: str | None = None


def zone(schedule: Schedule) -> ZoneInfo:
    return ZoneInfo(schedule.time_zone)


def local(schedule: Schedule, at: float) -> dt.datetime:
    """`at` on the wall clock of the schedule's time zone (for people)."""
    return dt.datetime.fromtimestamp(at, zone(schedule))


def wall_to_instant(wall: dt.datetime, tz: ZoneInfo) -> float:
    """The instant a naive wall-clock time names in `tz`: the earlier of two in a fall-back's repeated
    hour; in a spring-forward's gap, the first instant after the gap."""
    early = wall.replace(tzinfo=tz, fold=0).timestamp()
    late = wall.replace(tzinfo=tz, fold=1).timestamp()
    lo, hi = min(early, late), max(early, late)
    if lo == hi or dt.datetime.fromtimestamp(lo, tz).replace(tzinfo=None) == wall:
        return lo  # exists (once, or twice: the first)
    # In the gap: neither reading shows `wall` again. The transition lies in (lo, hi]; it is the first
    # instant whose offset is the later one (offsets change on whole seconds).
    after = dt.datetime.fromtimestamp(hi, tz).utcoffset()
    low, high = math.floor(lo), math.ceil(hi)
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return float(high)


class Rotation:
    """The hand-offs of one schedule: boundary k begins shift k, of members[k % len(members)]."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.tz = zone(schedule)
        weekday, hour, minute = schedule.handoff_time
        self._time = dt.time(hour, minute)
        self._fixed = schedule.rotation_seconds
        self._days = 7 if schedule.rotation == "weekly" else 1
        first_day = schedule.start
        if schedule.rotation == "weekly" and weekday is not None:
            first_day += dt.timedelta(days=(weekday - first_day.weekday()) % 7)
        self.first_day = first_day
        self.first = wall_to_instant(dt.datetime.combine(first_day, self._time), self.tz)

    def boundary(self, k: int) -> float:
        """When shift k begins (k ≥ 0)."""
        if self._fixed is not None:
            return self.first + k * self._fixed
        day = self.first_day + dt.timedelta(days=k * self._days)
        return wall_to_instant(dt.datetime.combine(day, self._time), self.tz)

    def user(self, k: int) -> str:
        members = self.schedule.members
        return members[k % len(members)]

    def shift(self, k: int) -> Shift:
        return Shift(self.user(k), self.boundary(k), self.boundary(k + 1))

    def index_at(self, at: float) -> int | None:
        """The shift in force at `at`; None before the first hand-off."""
        if at < self.first:
            return None
        if self._fixed is not None:
            k = int((at - self.first) // self._fixed)
        else:
            days = (dt.datetime.fromtimestamp(at, self.tz).date() - self.first_day).days
            k = max(0, days // self._days)
        # The estimate is off by one at most around a hand-off (the wall clock's day vs the hand-off time).
        while k > 0 and self.boundary(k) > at:
            k -= 1
        while self.boundary(k + 1) <= at:
            k += 1
        return k

    def shifts(self, start: float, end: float) -> Iterator[Shift]:
        """The rotation's shifts that overlap [start, end), whole (not cut to the range)."""
        k = self.index_at(max(start, self.first))
        while k is not None:
            shift = self.shift(k)
            if shift.start >= end:
                return
            yield shift
            k += 1


def shift_at(schedule: Schedule, at: float) -> Shift | None:
    """The rotation's shift at `at` (overrides aside); None before the first hand-off."""
    rotation = Rotation(schedule)
    k = rotation.index_at(at)
    return None if k is None else rotation.shift(k)


def _rank(override: Override) -> tuple[float, str]:
    return override.created_at, override.id


def shifts(schedule: Schedule, start: float, end: float, overrides: Sequence[Override] = ()) -> list[Shift]:
    """Who is on call over [start, end), in order, cut to the range: the rotation cut by `overrides`
    (this schedule's: the caller picks them, the schedule does not know its name), adjacent pieces of the same person for the same reason (the
    rotation, or one override) merged. Times when nobody is on call (before the first hand-off, with no
    override) have no shift. The cost grows with the shifts and overrides in the range."""
    if not end > start:
        return []
    mine = sorted((o for o in overrides if o.start < end and o.end > start and o.start < o.end), key=_rank)
    rotation = list(Rotation(schedule).shifts(start, end))
    points = {start, end}
    points.update(s.start for s in rotation if start < s.start < end)
    points.update(t for o in mine for t in (o.start, o.end) if start < t < end)
    edges = sorted(points)
    pieces: list[Shift] = []
    r = 0
    for lo, hi in itertools.pairwise(edges):
        winner = next((o for o in reversed(mine) if o.start <= lo and o.end >= hi), None)
        while r < len(rotation) and rotation[r].end <= lo:
            r += 1
        if winner is not None:
            piece = Shift(winner.user, lo, hi, winner.id)
        elif r < len(rotation) and rotation[r].start <= lo:
            piece = Shift(rotation[r].user, lo, hi)
        else:
            continue  # nobody
        last = pieces[-1] if pieces else None
        if last and last.end == lo and (last.user, last.override) == (piece.user, piece.override):
            pieces[-1] = Shift(last.user, last.start, hi, last.override)
        else:
            pieces.append(piece)
    return pieces


def on_call(schedule: Schedule, at: float, overrides: Sequence[Override] = ()) -> Shift | None:
    """Who is on call at `at` and from when to when: the override in force (the latest created of
    those covering `at`), else the rotation's shift; either cut where another override takes over.
    None when nobody is (before the first hand-off, with no override)."""
    covering = [o for o in overrides if o.start <= at < o.end]
    if covering:
        winner = max(covering, key=_rank)
        window = winner.start, winner.end
    else:
        shift = shift_at(schedule, at)
        if shift is None:
            return None
        window = shift.start, shift.end
    return next((s for s in shifts(schedule, *window, overrides) if s.start <= at < s.end), None)


def next_shift(schedule: Schedule, at: float, overrides: Sequence[Override] = ()) -> Shift | None:
    """The shift after the one in force at `at` (the first one after `at` when nobody is on call then);
    it may be the same person's (a one-member rotation). `overrides` must include those that begin
    after `at`, as far ahead as the answer may lie."""
    current = on_call(schedule, at, overrides)
    after = current.end if current is not None else at
    following = on_call(schedule, after, overrides)
    if following is not None:
        return following
    first = Rotation(schedule).first
    starts = [o.start for o in overrides if o.start > after and o.end > o.start]
    starts += [first] if first > after else []
    return on_call(schedule, min(starts), overrides) if starts else None
