"""Charts: time to draw one, and the memory they take.

Run: python bench/charts.py [--count 20] [--series 12] [--points 300]
Draws `count` charts of `series` series × `points` points (8 lines shown, the rest summed), as the relay
does for `chart: true` (rendering.chart.draw, matplotlib Agg), and reports the time per chart (first,
median, max), the PNG size and the process's peak RSS before the first chart and after the last.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time

from common import dump, machine

from alertmanager_wecom.rendering import chart


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--series", type=int, default=12)
    parser.add_argument("--points", type=int, default=300)
    args = parser.parse_args()
    import alertmanager_wecom.web.app  # noqa: F401 - the service's own modules, as in a running relay

    before = peak_rss_mb()
    now = time.time()
    series = [
        chart.Series(
            f'node_load1{{instance="10.0.0.{i}:9100"}}',
            [(now - 3600 + k * 3600 / args.points, 2 + math.sin(k / 20 + i)) for k in range(args.points)],
        )
        for i in range(args.series)
    ]
    times, sizes = [], []
    for _ in range(args.count):
        t0 = time.perf_counter()
        png = chart.draw("NodeLoad 节点负载", series, now - 1200, chart.threshold("node_load1 > 1.5"))
        times.append(time.perf_counter() - t0)
        sizes.append(len(png))
    result = {
        "machine": machine(),
        "charts": args.count,
        "series": args.series,
        "points": args.points,
        "first_ms": round(times[0] * 1000, 1),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "png_bytes_median": int(statistics.median(sizes)),
        "peak_rss_mb_before": round(before, 1),
        "peak_rss_mb_after": round(peak_rss_mb(), 1),
    }
    print(dump(result))


if __name__ == "__main__":
    main()
