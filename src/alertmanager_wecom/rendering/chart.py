"""A chart of an alert's expression as a PNG: one line per series (at most `max_series`, the rest summed as
"others"), the alert's start marked, the threshold drawn when the expression's comparison can be read.

matplotlib (Agg, no display) is the optional ``charts`` extra; `available()` says whether it is installed,
so that a config asking for charts is refused at load without it. Drawing is CPU work: callers run it in
a thread. Text stays ASCII unless a CJK font is installed (Debian ``fonts-noto-cjk``): never tofu boxes.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

MAX_BYTES = 2 * 1024 * 1024  # WeCom: images up to 2 MB (robots: before base64)
_THRESHOLD = re.compile(r"(>=|<=|==|!=|>|<)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*$", re.I)
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK",
    "WenQuanYi Zen Hei",
    "Source Han Sans SC",
)
COLORS = ("#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d", "#868e96")


def available() -> bool:
    """Whether matplotlib (the charts extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]  # (unix time, value)


def threshold(expr: str) -> tuple[str, float] | None:
    """The comparison at the end of an alerting expression (`x > 0.9`), if there is a plain one."""
    match = _THRESHOLD.search(expr.strip())
    if match is None:
        return None
    value = float(match.group(2))
    return (match.group(1), value) if math.isfinite(value) else None


def strip_comparison(expr: str) -> str:
    """The expression without its trailing comparison: the curve, not just the points over the line."""
    match = _THRESHOLD.search(expr.strip())
    return expr.strip()[: match.start()].strip() if match else expr.strip()


MIN_RANGE = 60.0  # an alert that says it starts in the future still gets a minute of curve


def query_window(
    started: float, now: float, before: float, max_range: float, points: int
) -> tuple[float, float, float]:
    """(start, end, step) of a chart's query_range: from `before` the alert's start to now, but over
    at most `max_range` (the start is alert data: it may say weeks ago, or next year), and at most
    `points` points per series: the work Prometheus does is bounded whatever the alert says."""
    end = now
    start = min(max(started - before, end - max_range), end - MIN_RANGE)
    # Prometheus returns floor((end - start) / step) + 1 points: with this step, at most `points`.
    step = max(1.0, float(math.ceil((end - start) / (points - 1))))
    return start, end, step


def keep_series(series: list[Series], most: int) -> list[Series]:
    """The `most` - 1 series with the highest peaks, and the rest summed as "others" (when there are more)."""
    if len(series) <= most:
        return series
    ranked = sorted(series, key=lambda s: max((v for _, v in s.points), default=0.0), reverse=True)
    kept, rest = ranked[: most - 1], ranked[most - 1 :]
    summed: dict[float, float] = {}
    for one in rest:
        for at, value in one.points:
            summed[at] = summed.get(at, 0.0) + value
    return [*kept, Series(f"others ({len(rest)})", sorted(summed.items()))]


@functools.lru_cache(maxsize=1)
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    def known() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in _CJK_FONTS if name in installed), None)

    found = known()
    if found is None:
        # matplotlib's font list is cached from its first run: a CJK font installed since is added here.
        for path in font_manager.findSystemFonts():
            if any(mark in Path(path).name for mark in ("CJK", "wqy", "SourceHan")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = known()
    return found


def _text(value: str, cjk: bool) -> str:
    value = " ".join(value.split())
    if len(value) > 60:
        value = value[:59] + "…"
    if cjk:
        return value
    # No font for it: left out rather than drawn as boxes.
    return " ".join(value.encode("ascii", "ignore").decode("ascii").split())


def draw(
    title: str,
    series: list[Series],
    started: float,
    line: tuple[str, float] | None,
    time_zone: str = "Asia/Shanghai",
    max_series: int = 8,
) -> bytes:
    """The chart as PNG bytes (under 2 MB: a few hundred points at 100 dpi are tens of kilobytes)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    font = _cjk_font()
    zone = ZoneInfo(time_zone)
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.add_subplot()
    if font:
        matplotlib.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
    shown = keep_series(series, max_series)
    for index, one in enumerate(shown):
        if not one.points:
            continue
        times = [_day(at) for at, _ in one.points]
        values = [value for _, value in one.points]
        axes.plot(
            times, values, color=COLORS[index % len(COLORS)], linewidth=1.6, label=_text(one.name, bool(font))
        )
    axes.axvline(
        _day(started),
        color="#c92a2a",
        linestyle="--",
        linewidth=1,
    )
    if line is not None:
        axes.axhline(line[1], color="#c92a2a", linestyle=":", linewidth=1.2, label=f"{line[0]} {line[1]:g}")
    axes.set_title(_text(title, bool(font)), fontsize=11, loc="left")
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    axes.grid(True, color="#e9ecef")
    if any(one.points for one in shown) or line is not None:
        axes.legend(loc="upper left", fontsize=7, frameon=False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    data = out.getvalue()
    if len(data) > MAX_BYTES:
        raise ValueError(f"the chart is {len(data)} bytes, over WeCom's 2 MB")
    return data


def _day(at: float) -> float:
    """Unix time as matplotlib's date number (days since 1970-01-01 UTC, its default epoch)."""
    return at / 86400.0


def series_from_matrix(result: list[dict[str, Any]]) -> list[Series]:
    """Prometheus's ``resultType: matrix`` → series named by their labels."""
    out = []
    for item in result:
        labels = item.get("metric") or {}
        name = labels.get("__name__", "")
        rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        points = []
        for at, value in item.get("values") or []:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                points.append((float(at), number))
        out.append(Series(f"{name}{{{rest}}}" if rest else name or "value", points))
    return out
