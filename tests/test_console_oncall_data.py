"""What the console's on-call pages are made of, without a server: the calendar by day on a schedule's
clock (hand-offs, overrides, DST), the incidents' order and status, the timeline's escalation levels,
the weekly median time to acknowledge and the chart's geometry."""

from __future__ import annotations

import base64
import datetime as dt
from zoneinfo import ZoneInfo

from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.schedule import shifts
from alertmanager_wecom.oncall.store import Incident, IncidentEvent, Override
from alertmanager_wecom.web.console import _basic_user
from alertmanager_wecom.web.console_chart import WEEK, duration, tta_chart, weekly_medians
from alertmanager_wecom.web.console_oncall import (
    calendar,
    incident_view,
    ordered,
    shown_override,
    shown_shift,
    states,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str, tz: str = "Asia/Shanghai") -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def schedule(**fields: object) -> Schedule:
    values: dict[str, object] = {"members": ["zhangsan", "lisi", "wangwu"], "start": "2026-12-01"}
    values.update(fields)
    return Schedule.model_validate(values)


def test_the_calendar_lays_out_each_day_from_today_in_weeks_from_monday() -> None:
    sre = schedule()
    now = at("2026-12-03T15:30")  # a Thursday: 12-01 zhangsan, 12-02 lisi, 12-03 wangwu (from 09:00)
    found = shifts(sre, now, now + 28 * 86400)
    weeks = calendar(sre, found, now)
    assert len(weeks) == 5 and all(len(w) == 7 for w in weeks)
    assert weeks[0][:3] == [None, None, None]  # Mon-Wed before today
    today = weeks[0][3]
    assert today is not None and today.today and today.date == dt.date(2026, 12, 3)
    # Today from now: wangwu (12-03's shift); tomorrow: wangwu until 09:00, then zhangsan.
    assert [(s.user, s.start) for s in today.segments] == [("wangwu", "15:30")]
    friday = weeks[0][4]
    assert friday is not None and not friday.today
    assert [(s.user, s.start) for s in friday.segments] == [("wangwu", "00:00"), ("zhangsan", "09:00")]
    days = [d for w in weeks for d in w if d is not None]
    assert len(days) == 28 and days[-1].date == dt.date(2026, 12, 30)
    assert weeks[-1][3:] == [None] * 4


def test_an_override_marks_the_part_of_the_day_it_covers() -> None:
    sre = schedule()
    now = at("2026-12-03T15:30")
    cover = Override("a" * 12, "sre", "zhaoliu", at("2026-12-05T12:00"), at("2026-12-05T20:00"))
    weeks = calendar(sre, shifts(sre, now, now + 28 * 86400, [cover]), now)
    saturday = weeks[0][5]
    assert saturday is not None
    assert [(s.user, s.start, s.override) for s in saturday.segments] == [
        ("zhangsan", "00:00", None),
        ("lisi", "09:00", None),
        ("zhaoliu", "12:00", "a" * 12),
        ("lisi", "20:00", None),
    ]
    shown = shown_override(cover, sre)
    assert (shown.start, shown.end, shown.time_zone) == (
        "2026-12-05 12:00",
        "2026-12-05 20:00",
        "Asia/Shanghai",
    )


def test_days_are_the_wall_clocks_across_a_dst_change() -> None:
    ny = schedule(time_zone="America/New_York", handoff="09:00", start="2026-10-01")
    now = at("2026-10-31T12:00", "America/New_York")  # DST ends on 11-01 at 02:00
    weeks = calendar(ny, shifts(ny, now, now + 28 * 86400), now)
    days = {d.date: d for w in weeks for d in w if d is not None}
    sunday = days[dt.date(2026, 11, 1)]
    assert [s.start for s in sunday.segments] == ["00:00", "09:00"]  # the hand-off at 09:00 local, still
    monday = days[dt.date(2026, 11, 2)]
    assert [s.start for s in monday.segments] == ["00:00", "09:00"]


def test_a_shift_is_shown_on_its_schedules_clock() -> None:
    sre = schedule()
    [first] = shifts(sre, at("2026-12-01T10:00"), at("2026-12-01T11:00"))
    shown = shown_shift(sre, first)
    assert shown is not None and (shown.user, shown.start) == ("zhangsan", "2026-12-01 10:00")
    assert shown_shift(sre, None) is None


def incident(
    id: str,
    started: float,
    receiver: str = "default",
    acked: float | None = None,
    resolved: float | None = None,
    silenced: float | None = None,
    events: list[IncidentEvent] | None = None,
) -> Incident:
    return Incident(
        id=id,
        receiver=receiver,
        group_key=id,
        group_id=id,
        title=f"<b>{id}</b>",
        policy="sre",
        started_at=started,
        acknowledged_by="lisi" if acked else None,
        acknowledged_at=acked,
        acknowledged_how="card" if acked else None,
        silenced_at=silenced,
        resolved_at=resolved,
        events=events or [],
    )


def test_incidents_open_first_then_recent_each_once_with_their_status() -> None:
    old_open = incident("a", 100.0)
    new_open = incident("b", 300.0, acked=310.0)
    closed = incident("c", 200.0, acked=250.0, resolved=400.0)
    silenced = incident("d", 150.0, silenced=160.0, resolved=170.0)
    listed = ordered([old_open, new_open], [new_open, closed, silenced, old_open])
    assert [i.id for i in listed] == ["b", "a", "c", "d"]
    assert states(old_open) == ["escalating"]
    assert states(new_open) == ["acknowledged"]
    assert states(closed) == ["acknowledged", "resolved"]
    assert states(silenced) == ["silenced", "resolved"]
    views = {i.id: incident_view(i, SHANGHAI) for i in listed}
    assert [i for i, v in views.items() if v.can_ack] == ["a"]  # open, nobody acknowledged or silenced
    assert views["b"].acknowledged == "1970-01-01 08:05:10"


def test_the_timeline_reads_the_escalation_level_and_round() -> None:
    events = [
        IncidentEvent(at("2026-12-03T10:00"), "opened"),
        IncidentEvent(at("2026-12-03T10:00:01"), "notified", ["lisi"], "app:ops"),
        IncidentEvent(at("2026-12-03T10:10"), "escalated", ["wangwu"], "level 2", "10 min unacknowledged"),
        IncidentEvent(at("2026-12-03T10:40"), "escalated", ["sre"], "level 3, round 2", ""),
        IncidentEvent(at("2026-12-03T10:41"), "acknowledged", ["wangwu"], "link"),
    ]
    view = incident_view(incident("x", at("2026-12-03T10:00"), events=events), SHANGHAI)
    assert [(e.at, e.kind, e.level, e.round) for e in view.events] == [
        ("2026-12-03 10:00:00", "opened", None, None),
        ("2026-12-03 10:00:01", "notified", None, None),
        ("2026-12-03 10:10:00", "escalated", 2, None),
        ("2026-12-03 10:40:00", "escalated", 3, 2),
        ("2026-12-03 10:41:00", "acknowledged", None, None),
    ]
    assert view.events[1].who == ["lisi"] and view.events[2].detail == "10 min unacknowledged"
    assert view.started == "2026-12-03 10:00:00"


def test_the_weekly_median_time_to_acknowledge_per_receiver() -> None:
    now = 10 * WEEK
    found = [
        incident("a", now - 1 * 86400, acked=now - 1 * 86400 + 60),
        incident("b", now - 2 * 86400, acked=now - 2 * 86400 + 180),
        incident("c", now - 3 * 86400, acked=now - 3 * 86400 + 600),
        incident("d", now - 3 * 86400),  # never acknowledged: not in the median
        incident("e", now - 8 * 86400, receiver="db", acked=now - 8 * 86400 + 30),
        incident("f", now - 9 * WEEK, receiver="db", acked=now - 9 * WEEK + 30),  # before the 8 weeks
        incident("g", now - 86400, receiver="db", acked=now - 86400 - 5),  # another replica's clock
    ]
    medians = weekly_medians(found, now)
    assert list(medians) == ["db", "default"]
    assert medians["default"] == [None] * 7 + [180.0]
    assert medians["db"] == [None] * 6 + [30.0, 0.0]


def test_the_chart_places_each_week_and_breaks_its_line_where_a_week_has_nothing() -> None:
    now = 10 * WEEK
    found = [
        incident(f"i{w}", now - (8 - w) * WEEK + 3600, acked=now - (8 - w) * WEEK + 3600 + 60 * (w + 1))
        for w in (0, 1, 3, 4, 5)
    ]
    chart = tta_chart(found, now, SHANGHAI)
    [series] = chart.series
    assert series.medians == [60.0, 120.0, None, 240.0, 300.0, 360.0, None, None]
    assert series.counts == [1, 1, 0, 1, 1, 1, 0, 0]
    assert len(series.lines) == 2 and len(series.lines[1].split()) == 3  # weeks 0-1, then 3-5
    # The axis tops out at the first round step above the largest median (360 s: 10 minutes).
    assert [t.label for t in chart.y_ticks] == ["0s", "2m30s", "5m", "7m30s", "10m"]
    xs = [d.x for d in series.dots]
    assert xs[0] == chart.left and xs == sorted(xs)
    assert series.dots[-1].y == round(chart.bottom - (chart.bottom - chart.top) * 0.6, 1)
    assert all(chart.top <= d.y <= chart.bottom for d in series.dots)
    assert len(chart.weeks) == 8 and chart.x_ticks[-1].at == chart.right
    assert "n=1" in series.dots[0].label
    assert tta_chart([], now, SHANGHAI).series == []


def test_durations_read_short() -> None:
    assert [duration(s) for s in (0, 45, 60, 90, 1350, 3600, 7500, 86400, 97200)] == [
        "0s",
        "45s",
        "1m",
        "1m30s",
        "22m30s",
        "1h",
        "2h05m",
        "1d",
        "1d3h",
    ]


def test_the_console_acknowledges_as_who_logged_in() -> None:
    token = base64.b64encode("张三:secret:with:colons".encode()).decode()
    assert _basic_user(f"Basic {token}") == "张三"
    assert _basic_user("Bearer abc") == ""
    assert _basic_user("Basic not-base64!") == ""
    assert _basic_user("") == ""
