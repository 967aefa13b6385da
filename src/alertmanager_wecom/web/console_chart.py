"""Time to acknowledge per receiver over the last weeks, for the console's incidents page: the weekly
median (acknowledged_at - started_at) of the incidents in the on-call store, computed here, drawn by the
template as inline SVG (no script, no external asset: the console may have no internet). Every number
the SVG needs is computed here; the template only escapes and places them."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from alertmanager_wecom.oncall.store import Incident

WEEK = 7 * 86400.0
WEEKS = 8
READ = 1000  # the newest incidents the chart is drawn from (the API's own cap)
# Colours told apart in print and by most colour-blind readers (Okabe-Ito).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
# The y axis tops out at the first of these above the largest median (seconds).
STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 32, 14, 36


def weekly_durations(
    incidents: list[Incident], now: float, weeks: int = WEEKS
) -> dict[str, list[list[float]]]:
    """Per receiver, oldest week first: the times to acknowledge (seconds) of the incidents that started
    in each of the `weeks` weeks that end at `now`. Receivers with no acknowledged incident in those
    weeks are left out; an incident acknowledged "before" it started (clocks of two replicas) took 0."""
    durations: dict[str, list[list[float]]] = {}
    since = now - weeks * WEEK
    for incident in incidents:
        if incident.acknowledged_at is None or not since <= incident.started_at < now:
            continue
        week = min(weeks - 1, int((incident.started_at - since) // WEEK))
        per_week = durations.setdefault(incident.receiver, [[] for _ in range(weeks)])
        per_week[week].append(max(0.0, incident.acknowledged_at - incident.started_at))
    return dict(sorted(durations.items()))


def weekly_medians(
    incidents: list[Incident], now: float, weeks: int = WEEKS
) -> dict[str, list[float | None]]:
    """Per receiver, oldest week first: the median time to acknowledge (None: nothing acknowledged)."""
    return _medians(weekly_durations(incidents, now, weeks))


def _medians(durations: dict[str, list[list[float]]]) -> dict[str, list[float | None]]:
    return {r: [statistics.median(d) if d else None for d in per_week] for r, per_week in durations.items()}


def duration(seconds: float) -> str:
    """A short human duration: 45s, 12m, 22m30s, 2h05m, 3d4h."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60:02d}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f"{s % 3600 // 60:02d}m" if s % 3600 >= 60 else "")
    return f"{s // 86400}d" + (f"{s % 86400 // 3600}h" if s % 86400 >= 3600 else "")


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str  # the tooltip: week, median, how many


@dataclass(frozen=True)
class Series:
    receiver: str
    color: str
    lines: list[str]  # polyline points ("x,y x,y"), broken where a week has no acknowledgement
    dots: list[Dot]
    medians: list[float | None]
    counts: list[int]


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int  # x of the plot's right edge
    top: int
    bottom: int  # y of the x axis
    weeks: list[str]  # each week's first day ("MM-DD")
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    series: list[Series]


def tta_chart(incidents: list[Incident], now: float, tz: ZoneInfo, weeks: int = WEEKS) -> Chart:
    durations = weekly_durations(incidents, now, weeks)
    medians = _medians(durations)
    largest = max((v for ms in medians.values() for v in ms if v is not None), default=0.0)
    top = next((s for s in STEPS if s >= largest), STEPS[-1])
    if largest > top:  # past a week: fit the data
        top = int(largest) + 1
    plot_right, plot_bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    span = (plot_right - LEFT) / max(1, weeks - 1)

    def x(i: int) -> float:
        return round(LEFT + i * span, 1)

    def y(value: float) -> float:
        return round(plot_bottom - (plot_bottom - TOP) * min(value, top) / top, 1)

    starts = [dt.datetime.fromtimestamp(now - (weeks - i) * WEEK, tz).strftime("%m-%d") for i in range(weeks)]
    series = []
    for n, (receiver, values) in enumerate(medians.items()):
        made = [len(d) for d in durations[receiver]]
        lines: list[str] = []
        run: list[str] = []
        dots = []
        for i, value in enumerate(values):
            if value is None:
                if len(run) > 1:
                    lines.append(" ".join(run))
                run = []
                continue
            run.append(f"{x(i)},{y(value)}")
            dots.append(Dot(x(i), y(value), f"{receiver} · {starts[i]} · {duration(value)} · n={made[i]}"))
        if len(run) > 1:
            lines.append(" ".join(run))
        series.append(Series(receiver, PALETTE[n % len(PALETTE)], lines, dots, values, made))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=plot_right,
        top=TOP,
        bottom=plot_bottom,
        weeks=starts,
        x_ticks=[Tick(x(i), starts[i]) for i in range(weeks)],
        y_ticks=[Tick(y(top * k / 4), duration(top * k / 4)) for k in range(5)],
        series=series,
    )
