"""Making an override from what a person typed (the CLI, the API, the console): the checks, the id,
and reading times. The store keeps what is made here; schedule.py says what it means."""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from collections.abc import Mapping
from typing import Final
from zoneinfo import ZoneInfo

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.schedule import wall_to_instant
from alertmanager_wecom.oncall.store import Override

MOST_SECONDS: Final = 90 * 86400.0  # one override covers at most 90 days
MOST_AHEAD: Final = 366 * 86400.0  # and begins within a year
# A WeCom userid: 1–64 bytes of letters, digits and _ - . (and @ in WeCom, which recipients here do not
# take: it would read as a mention); the first a letter or digit.
_USERID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ID: Final = re.compile(r"[a-f0-9]{12}")


class OverrideError(ValueError):
    """What is wrong with an override, said for the person who asked for it."""


class UnknownSchedule(OverrideError):
    def __init__(self, name: str, known: Mapping[str, Schedule]) -> None:
        names = ", ".join(sorted(known)) or "none defined (oncall.schedules)"
        super().__init__(f"unknown schedule {name!r} (schedules: {names})")
        self.name = name


def new_id() -> str:
    """12 hex digits: short to type, random enough that two replicas never make the same one."""
    return secrets.token_hex(6)


def valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def schedule_named(schedules: Mapping[str, Schedule], name: str) -> Schedule:
    try:
        return schedules[name]
    except KeyError:
        raise UnknownSchedule(name, schedules) from None


def parse_time(value: object, now: float, tz: ZoneInfo) -> float:
    """Seconds since 1970 from "now", an ISO 8601 time (one without an offset is on the wall clock of
    `tz`; a date alone is its midnight) or a number of seconds since 1970."""
    if isinstance(value, bool):
        raise OverrideError(f"{value!r} is not a time: write ISO 8601 (2026-12-01T09:00+08:00) or seconds")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise OverrideError(f"{str(value)[:40]} is out of range") from None
    elif isinstance(value, str) and value.strip().lower() == "now":
        seconds = now
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise OverrideError(
                f"{value[:64]!r} is not a time: write ISO 8601 such as 2026-12-01T09:00 (the schedule's"
                " zone) or 2026-12-01T09:00+08:00, or now"
            ) from None
        seconds = wall_to_instant(parsed, tz) if parsed.tzinfo is None else parsed.timestamp()
    else:
        raise OverrideError("a time is ISO 8601 text or seconds since 1970")
    if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:  # up to the year 9999
        raise OverrideError(f"{value!r} is out of range")
    return seconds


def make_override(
    schedules: Mapping[str, Schedule],
    schedule: str,
    user: str,
    start: float,
    end: float,
    now: float,
    created_by: str = "",
) -> Override:
    """A new override, checked: a known schedule, one WeCom userid, start before end, at most 90 days,
    not over already and beginning within a year."""
    schedule_named(schedules, schedule)
    if not isinstance(user, str) or not _USERID.fullmatch(user):
        raise OverrideError(
            f"user {str(user)[:64]!r}: one WeCom userid (letters, digits, '_', '.', '-'; at most 64)"
        )
    for value in (start, end):
        if not math.isfinite(value):
            raise OverrideError("start and end must be finite times")
    if not start < end:
        raise OverrideError("the override must end after it starts")
    if end - start > MOST_SECONDS:
        raise OverrideError(f"an override covers at most {MOST_SECONDS / 86400:g} days; add several")
    if end <= now:
        raise OverrideError("the override is over already (it ends in the past)")
    if start > now + MOST_AHEAD:
        raise OverrideError("an override begins within a year from now")
    return Override(new_id(), schedule, user, start, end, created_by=created_by[:128], created_at=now)
