"""oncall/overrides.py: an override is made only when it makes sense (a known schedule, one userid, a
start before its end, at most 90 days, not over), and times are read as people write them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.overrides import (
    OverrideError,
    UnknownSchedule,
    make_override,
    parse_time,
    valid_id,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 1, 8, tzinfo=SHANGHAI).timestamp()
HOUR = 3600.0
SCHEDULES = {"sre": Schedule(members=["zhangsan", "lisi"], start=dt.date(2026, 12, 1))}


def test_a_good_override_gets_a_fresh_id_and_its_maker() -> None:
    made = make_override(SCHEDULES, "sre", "wangwu", NOW, NOW + HOUR, NOW, created_by="cli")
    again = make_override(SCHEDULES, "sre", "wangwu", NOW, NOW + HOUR, NOW)
    assert (made.schedule, made.user, made.start, made.end) == ("sre", "wangwu", NOW, NOW + HOUR)
    assert made.created_at == NOW and made.created_by == "cli"
    assert valid_id(made.id) and made.id != again.id


@pytest.mark.parametrize(
    ("user", "start", "end", "reason"),
    [
        ("", NOW, NOW + HOUR, "userid"),
        ("zhang san", NOW, NOW + HOUR, "userid"),
        ("oncall:sre", NOW, NOW + HOUR, "userid"),
        ("@all", NOW, NOW + HOUR, "userid"),
        ("a" * 65, NOW, NOW + HOUR, "userid"),
        ("lisi\n", NOW, NOW + HOUR, "userid"),
        ("wangwu", NOW + HOUR, NOW + HOUR, "end after it starts"),
        ("wangwu", NOW + HOUR, NOW, "end after it starts"),
        ("wangwu", NOW, NOW + 91 * 86400, "at most 90 days"),
        ("wangwu", NOW - 2 * HOUR, NOW - HOUR, "over already"),
        ("wangwu", NOW + 400 * 86400, NOW + 401 * 86400, "within a year"),
        ("wangwu", NOW, float("inf"), "finite"),
        ("wangwu", float("nan"), NOW, "finite"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason(user: str, start: float, end: float, reason: str) -> None:
    with pytest.raises(OverrideError, match=reason):
        make_override(SCHEDULES, "sre", user, start, end, NOW)


def test_an_unknown_schedule_names_the_known_ones() -> None:
    with pytest.raises(UnknownSchedule, match=r"unknown schedule 'dba' \(schedules: sre\)"):
        make_override(SCHEDULES, "dba", "wangwu", NOW, NOW + HOUR, NOW)
    with pytest.raises(UnknownSchedule, match="none defined"):
        make_override({}, "dba", "wangwu", NOW, NOW + HOUR, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("2026-12-01T09:00", NOW + HOUR),  # the zone's wall clock
        ("2026-12-01 09:00", NOW + HOUR),
        ("2026-12-01T01:00Z", NOW + HOUR),
        ("2026-12-01T09:00+08:00", NOW + HOUR),
        ("2026-12-01", NOW - 8 * HOUR),  # midnight
        (NOW + 5, NOW + 5),
        (int(NOW), NOW),
    ],
)
def test_times_are_read_as_people_write_them(text: str | float, expected: float) -> None:
    assert parse_time(text, NOW, SHANGHAI) == expected


def test_a_time_without_an_offset_in_a_dst_gap_is_the_gap_s_end() -> None:
    ny = ZoneInfo("America/New_York")
    gap_end = dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC).timestamp()
    assert parse_time("2026-03-08T02:30", NOW, ny) == gap_end


@pytest.mark.parametrize(
    "bad", ["tomorrow", "", "2026-13-01", True, None, [1], float("nan"), 1e20, -1, 10**400]
)
def test_what_is_not_a_time_is_refused(bad: object) -> None:
    with pytest.raises(OverrideError):
        parse_time(bad, NOW, SHANGHAI)
