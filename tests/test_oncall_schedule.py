"""oncall/schedule.py: who is on call when, on explicit times (no clock): rotations across hand-offs,
time zones with and without DST, weekly hand-off days, fixed durations, overrides; and properties over
random schedules (every instant covered once, member order kept, on_call agreeing with the calendar)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.schedule import (
    Rotation,
    Shift,
    local,
    next_shift,
    on_call,
    shift_at,
    shifts,
    wall_to_instant,
)
from alertmanager_wecom.oncall.store import Override

HOUR = 3600.0
DAY = 86400.0


def at(text: str, zone: str = "Asia/Shanghai") -> float:
    """An instant from a wall-clock time in `zone` that exists once."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def schedule(**fields: Any) -> Schedule:
    base: dict[str, Any] = {"members": ["zhangsan", "lisi", "wangwu"], "start": "2026-12-01"}
    return Schedule.model_validate(base | fields)


def override(
    user: str, start: float, end: float, created_at: float = 0.0, id: str = "", schedule: str = "sre"
) -> Override:
    return Override(id or f"{user}-{created_at:g}", schedule, user, start, end, created_at=created_at)


# -- the rotation alone -------------------------------------------------------------------------------


def test_daily_in_shanghai_hands_off_at_the_handoff_time_in_member_order() -> None:
    sre = schedule()
    assert shift_at(sre, at("2026-12-01T08:59:59")) is None  # before the first hand-off: nobody
    first = shift_at(sre, at("2026-12-01T09:00"))
    assert first == Shift("zhangsan", at("2026-12-01T09:00"), at("2026-12-02T09:00"))
    assert shift_at(sre, at("2026-12-02T08:59:59")) == first
    assert shift_at(sre, at("2026-12-02T09:00")) == Shift(
        "lisi", at("2026-12-02T09:00"), at("2026-12-03T09:00")
    )
    assert shift_at(sre, at("2026-12-03T23:00")).user == "wangwu"  # type: ignore[union-attr]
    assert shift_at(sre, at("2026-12-04T09:00")).user == "zhangsan"  # type: ignore[union-attr]
    # A year on: 365 days after the start, 365 % 3 = 2 → wangwu.
    assert shift_at(sre, at("2027-12-01T10:00")).user == "wangwu"  # type: ignore[union-attr]


def test_the_start_date_at_the_handoff_time_is_when_members0_begins_even_late_in_the_day() -> None:
    sre = schedule(handoff="21:30")
    assert shift_at(sre, at("2026-12-01T21:29")) is None
    assert shift_at(sre, at("2026-12-01T21:30")) == Shift(
        "zhangsan", at("2026-12-01T21:30"), at("2026-12-02T21:30")
    )


def test_daily_in_new_york_follows_the_wall_clock_across_dst() -> None:
    ny = "America/New_York"
    sre = schedule(time_zone=ny, start="2026-03-06")  # DST begins Sun 8 March 2026, ends Sun 1 November
    spring = shift_at(sre, at("2026-03-07T12:00", ny))
    assert spring is not None
    assert (spring.start, spring.end) == (at("2026-03-07T09:00", ny), at("2026-03-08T09:00", ny))
    assert spring.end - spring.start == 23 * HOUR
    autumn = shift_at(sre, at("2026-10-31T12:00", ny))
    assert autumn is not None and autumn.end - autumn.start == 25 * HOUR
    assert local(sre, autumn.end).strftime("%H:%M %Z") == "09:00 EST"


def test_a_handoff_in_the_spring_gap_moves_to_the_end_of_the_gap() -> None:
    ny = ZoneInfo("America/New_York")
    sre = schedule(time_zone="America/New_York", handoff="02:30", start="2026-03-07")
    # 02:30 does not exist on 8 March (02:00 EST → 03:00 EDT, at 07:00 UTC).
    gap_end = dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC).timestamp()
    shift = shift_at(sre, gap_end)
    assert shift is not None and shift.start == gap_end and shift.user == "lisi"
    assert local(sre, shift.start).strftime("%H:%M %Z") == "03:00 EDT"
    assert shift.end == dt.datetime(2026, 3, 9, 2, 30, tzinfo=ny).timestamp()
    before = shift_at(sre, gap_end - 1)
    assert before is not None and before.user == "zhangsan" and before.end == gap_end


def test_a_handoff_in_the_repeated_hour_is_the_first_of_the_two() -> None:
    sre = schedule(time_zone="America/New_York", handoff="01:30", start="2026-10-31")
    shift = shift_at(sre, at("2026-11-01T12:00", "America/New_York"))
    assert shift is not None and shift.user == "lisi"
    assert local(sre, shift.start).strftime("%H:%M %Z") == "01:30 EDT"
    assert shift.start - shift_at(sre, shift.start - 1).start == 24 * HOUR  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("wall", "zone", "utc"),
    [
        ("2026-03-08T02:00", "America/New_York", "2026-03-08T07:00"),  # the gap's first minute
        ("2026-03-08T02:59", "America/New_York", "2026-03-08T07:00"),
        ("2026-03-08T03:00", "America/New_York", "2026-03-08T07:00"),  # right after it: itself
        ("2026-03-29T02:15", "Europe/Berlin", "2026-03-29T01:00"),
        ("2026-10-25T02:30", "Europe/Berlin", "2026-10-25T00:30"),  # twice: the first (CEST)
        ("2026-12-01T09:00", "Asia/Shanghai", "2026-12-01T01:00"),
        ("2026-04-05T01:45", "Australia/Lord_Howe", "2026-04-04T14:45"),  # a half-hour DST, twice
    ],
)
def test_wall_clock_times_become_instants(wall: str, zone: str, utc: str) -> None:
    expected = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC).timestamp()
    assert wall_to_instant(dt.datetime.fromisoformat(wall), ZoneInfo(zone)) == expected


def test_weekly_begins_on_the_first_handoff_day_on_or_after_the_start() -> None:
    sre = schedule(rotation="weekly", handoff="Mon 09:00", start="2026-12-02")  # a Wednesday
    assert shift_at(sre, at("2026-12-06T12:00")) is None
    first = shift_at(sre, at("2026-12-07T09:00"))  # Monday
    assert first == Shift("zhangsan", at("2026-12-07T09:00"), at("2026-12-14T09:00"))
    assert shift_at(sre, at("2026-12-20T23:59")).user == "lisi"  # type: ignore[union-attr]
    assert shift_at(sre, at("2026-12-21T09:00")).user == "wangwu"  # type: ignore[union-attr]
    # Starting on the hand-off day itself: that day.
    monday = schedule(rotation="weekly", handoff="Mon 09:00", start="2026-12-07")
    assert Rotation(monday).first == at("2026-12-07T09:00")
    # Without a weekday: the start's own weekday.
    plain = schedule(rotation="weekly", handoff="09:00", start="2026-12-02")
    assert shift_at(plain, at("2026-12-08T12:00")).end == at("2026-12-09T09:00")  # type: ignore[union-attr]


def test_weekly_in_berlin_is_a_week_minus_an_hour_across_the_spring_change() -> None:
    berlin = "Europe/Berlin"
    sre = schedule(rotation="weekly", handoff="Fri 18:00", time_zone=berlin, start="2026-03-20")
    shift = shift_at(sre, at("2026-03-29T12:00", berlin))
    assert shift is not None and shift.user == "lisi"
    assert (shift.start, shift.end) == (at("2026-03-27T18:00", berlin), at("2026-04-03T18:00", berlin))
    assert shift.end - shift.start == 7 * DAY - HOUR


def test_a_12h_rotation_counts_elapsed_time_not_the_wall_clock() -> None:
    sre = schedule(rotation="12h", start="2026-12-01")
    assert shift_at(sre, at("2026-12-01T20:59")) == Shift(
        "zhangsan", at("2026-12-01T09:00"), at("2026-12-01T21:00")
    )
    assert shift_at(sre, at("2026-12-01T21:00")).user == "lisi"  # type: ignore[union-attr]
    assert shift_at(sre, at("2026-12-02T09:00")).user == "wangwu"  # type: ignore[union-attr]
    ny = "America/New_York"
    dst = schedule(rotation="12h", time_zone=ny, start="2026-03-07")
    after = shift_at(dst, at("2026-03-08T12:00", ny))
    assert after is not None
    # 09:00 EST + 24 elapsed hours is 10:00 EDT: the wall clock moved, the rotation did not.
    assert local(dst, after.start).strftime("%H:%M") == "10:00"
    assert after.end - after.start == 12 * HOUR


# -- overrides ----------------------------------------------------------------------------------------


def test_an_override_cuts_the_shift_it_falls_in() -> None:
    sre = schedule()
    cover = override("zhaoliu", at("2026-12-01T12:00"), at("2026-12-01T18:00"), id="a1")
    assert shifts(sre, at("2026-12-01T09:00"), at("2026-12-02T09:00"), [cover]) == [
        Shift("zhangsan", at("2026-12-01T09:00"), at("2026-12-01T12:00")),
        Shift("zhaoliu", at("2026-12-01T12:00"), at("2026-12-01T18:00"), "a1"),
        Shift("zhangsan", at("2026-12-01T18:00"), at("2026-12-02T09:00")),
    ]
    assert on_call(sre, at("2026-12-01T12:00"), [cover]) == Shift(
        "zhaoliu", at("2026-12-01T12:00"), at("2026-12-01T18:00"), "a1"
    )
    # Before and after it: the rotation's shift, cut where the override is.
    assert on_call(sre, at("2026-12-01T11:59"), [cover]) == Shift(
        "zhangsan", at("2026-12-01T09:00"), at("2026-12-01T12:00")
    )
    assert on_call(sre, at("2026-12-01T18:00"), [cover]) == Shift(
        "zhangsan", at("2026-12-01T18:00"), at("2026-12-02T09:00")
    )
    assert next_shift(sre, at("2026-12-01T10:00"), [cover]) == on_call(sre, at("2026-12-01T12:00"), [cover])


def test_of_overlapping_overrides_the_one_created_last_wins() -> None:
    sre = schedule()
    older = override("zhaoliu", at("2026-12-01T10:00"), at("2026-12-01T20:00"), created_at=1, id="old")
    newer = override("sunqi", at("2026-12-01T14:00"), at("2026-12-01T16:00"), created_at=2, id="new")
    for order in ([older, newer], [newer, older]):
        assert [
            (s.user, local(sre, s.start).hour, local(sre, s.end).hour)
            for s in shifts(sre, at("2026-12-01T09:00"), at("2026-12-01T21:00"), order)
        ] == [
            ("zhangsan", 9, 10),
            ("zhaoliu", 10, 14),
            ("sunqi", 14, 16),
            ("zhaoliu", 16, 20),
            ("zhangsan", 20, 21),
        ]
        assert on_call(sre, at("2026-12-01T15:00"), order).user == "sunqi"  # type: ignore[union-attr]
        assert on_call(sre, at("2026-12-01T17:00"), order) == Shift(
            "zhaoliu", at("2026-12-01T16:00"), at("2026-12-01T20:00"), "old"
        )
    # Created at the same time: the larger id, so that every replica agrees.
    a = override("sunqi", at("2026-12-01T10:00"), at("2026-12-01T12:00"), created_at=5, id="aaa")
    b = override("zhaoliu", at("2026-12-01T10:00"), at("2026-12-01T12:00"), created_at=5, id="bbb")
    assert on_call(sre, at("2026-12-01T11:00"), [b, a]).user == "zhaoliu"  # type: ignore[union-attr]


def test_an_override_before_the_start_puts_someone_on_call_and_nobody_else_is() -> None:
    sre = schedule()
    early = override("zhaoliu", at("2026-11-30T09:00"), at("2026-11-30T12:00"), id="e")
    assert on_call(sre, at("2026-11-30T08:00"), [early]) is None
    assert on_call(sre, at("2026-11-30T10:00"), [early]).user == "zhaoliu"  # type: ignore[union-attr]
    assert on_call(sre, at("2026-11-30T13:00"), [early]) is None
    assert next_shift(sre, at("2026-11-30T08:00"), [early]).user == "zhaoliu"  # type: ignore[union-attr]
    # After the override and before the start: the next one is members[0]'s first.
    following = next_shift(sre, at("2026-11-30T10:00"), [early])
    assert following == Shift("zhangsan", at("2026-12-01T09:00"), at("2026-12-02T09:00"))
    assert shifts(sre, at("2026-11-30T00:00"), at("2026-12-01T10:00"), [early]) == [
        Shift("zhaoliu", at("2026-11-30T09:00"), at("2026-11-30T12:00"), "e"),
        Shift("zhangsan", at("2026-12-01T09:00"), at("2026-12-01T10:00")),
    ]


def test_the_calendar_merges_a_person_s_adjacent_shifts_but_keeps_an_override_apart() -> None:
    alone = schedule(members=["zhangsan"])
    assert shifts(alone, at("2026-12-01T09:00"), at("2026-12-08T09:00")) == [
        Shift("zhangsan", at("2026-12-01T09:00"), at("2026-12-08T09:00"))
    ]
    twice = schedule(members=["zhangsan", "zhangsan", "lisi"])
    assert [s.user for s in shifts(twice, at("2026-12-01T09:00"), at("2026-12-07T09:00"))] == [
        "zhangsan",
        "lisi",
        "zhangsan",
        "lisi",
    ]
    own = override("zhangsan", at("2026-12-01T12:00"), at("2026-12-01T13:00"), id="own")
    assert [s.override for s in shifts(alone, at("2026-12-01T09:00"), at("2026-12-02T09:00"), [own])] == [
        None,
        "own",
        None,
    ]


def test_next_shift_is_the_one_after_the_current() -> None:
    sre = schedule()
    assert next_shift(sre, at("2026-12-01T10:00")) == Shift(
        "lisi", at("2026-12-02T09:00"), at("2026-12-03T09:00")
    )
    assert next_shift(sre, at("2026-11-01T10:00")) == Shift(
        "zhangsan", at("2026-12-01T09:00"), at("2026-12-02T09:00")
    )


# -- properties ---------------------------------------------------------------------------------------

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC"]
POOL = ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi"]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    rotation = draw(st.sampled_from(["daily", "weekly", "12h", "5h", "36h"]))
    weekday = draw(st.sampled_from(["", "Mon ", "Sun ", "Fri "])) if rotation == "weekly" else ""
    hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 59]))
    return schedule(
        members=draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=5, unique=True)),
        rotation=rotation,
        handoff=f"{weekday}{hour:02d}:{minute:02d}",
        time_zone=draw(st.sampled_from(ZONES)),
        start=draw(st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31))).isoformat(),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, float, float, list[Override]]:
    sre = draw(schedules())
    first = Rotation(sre).first
    start = first + draw(st.floats(0, 400 * DAY, allow_nan=False))
    end = start + draw(st.floats(1, 30 * DAY, allow_nan=False))
    spans = st.tuples(st.floats(start - DAY, end, allow_nan=False), st.floats(60, 5 * DAY, allow_nan=False))
    made = draw(st.lists(st.tuples(spans, st.sampled_from(POOL), st.integers(0, 3)), max_size=4))
    overrides = [
        Override(f"o{i}", "sre", user, s, s + length, created_at=created)
        for i, ((s, length), user, created) in enumerate(made)
    ]
    return sre, start, end, overrides


@settings(max_examples=150, deadline=None)
@given(cases())
def test_every_instant_after_the_start_is_covered_by_exactly_one_shift(
    case: tuple[Schedule, float, float, list[Override]],
) -> None:
    sre, start, end, overrides = case
    calendar = shifts(sre, start, end, overrides)
    assert calendar and calendar[0].start == start and calendar[-1].end == end
    for before, after in itertools.pairwise(calendar):
        assert before.end == after.start  # no gap, no overlap
        assert (before.user, before.override) != (after.user, after.override)  # merged
    assert all(s.start < s.end for s in calendar)


@settings(max_examples=150, deadline=None)
@given(cases(), st.floats(0, 1))
def test_on_call_agrees_with_the_calendar(
    case: tuple[Schedule, float, float, list[Override]], where: float
) -> None:
    sre, start, end, overrides = case
    instant = min(start + where * (end - start), end - 1e-3)
    now = on_call(sre, instant, overrides)
    assert now is not None and now.start <= instant < now.end
    [containing] = [s for s in shifts(sre, start, end, overrides) if s.start <= instant < s.end]
    assert (containing.user, containing.override) == (now.user, now.override)
    # The calendar's shift is cut to the range and merged; on_call's is the piece in force.
    assert max(now.start, start) >= containing.start and min(now.end, end) <= containing.end
    following = next_shift(sre, instant, overrides)
    assert following is not None and following.start == now.end


@settings(max_examples=150, deadline=None)
@given(schedules(), st.integers(0, 200))
def test_without_overrides_shifts_follow_the_member_order(sre: Schedule, offset: int) -> None:
    rotation = Rotation(sre)
    begin = rotation.boundary(offset)
    calendar = shifts(sre, begin, rotation.boundary(offset + 2 * len(sre.members)))
    members = sre.members
    if len(members) == 1:
        assert [s.user for s in calendar] == members
        return
    expected = [members[(offset + i) % len(members)] for i in range(2 * len(members))]
    assert [s.user for s in calendar] == expected
    lengths = {s.end - s.start for s in calendar}
    if sre.rotation_seconds is not None:
        assert lengths == {sre.rotation_seconds}
    else:
        nominal = 7 * DAY if sre.rotation == "weekly" else DAY
        assert all(abs(length - nominal) <= HOUR for length in lengths)  # DST: an hour at most
        # Each hand-off is at the hand-off time on the wall clock, unless that time did not exist.
        _, hour, minute = sre.handoff_time
        for s in calendar:
            wall = local(sre, s.start)
            if (wall.hour, wall.minute) != (hour, minute):
                naive = wall.replace(tzinfo=None, hour=hour, minute=minute)
                assert wall_to_instant(naive, rotation.tz) == s.start  # moved out of a gap
                assert (
                    naive.replace(tzinfo=rotation.tz)
                    .astimezone(dt.UTC)
                    .astimezone(rotation.tz)
                    .replace(tzinfo=None)
                    != naive
                )
