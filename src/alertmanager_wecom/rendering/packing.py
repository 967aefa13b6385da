"""Packing alerts into messages: how many alerts each part takes so that it fits its byte limit.

Pure: it only asks `fits(start, count, omitted, limit)`, so the search is tested without templates."""

from __future__ import annotations

from typing import Protocol


class Fits(Protocol):
    def __call__(self, start: int, count: int, omitted: int, limit: int) -> bool:
        """Whether alerts [start, start + count) fit one message of `limit` bytes, the message also
        saying that `omitted` alerts were left out."""
        ...


def pack(total: int, cap: int, limits: tuple[int, int], fits: Fits) -> tuple[list[tuple[int, int]], int]:
    """Greedy: each part takes as many alerts as fit (exponential then binary search); at most `cap`
    parts, the last one saying how many alerts were left out. `limits`: the first part's byte limit
    and the others'. Returns the parts as (start, end) spans and the number left out. A part takes at
    least one alert even when it does not fit: the renderer's hard cut then keeps it under the limit."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < total:
        last_allowed = len(spans) == cap - 1
        remaining = total - start
        limit = limits[0] if not spans else limits[1]

        def fits_here(
            count: int,
            start: int = start,
            remaining: int = remaining,
            last_allowed: bool = last_allowed,
            limit: int = limit,
        ) -> bool:
            return fits(start, count, remaining - count if last_allowed else 0, limit)

        count = 1
        if fits_here(1):
            low, high = 1, 2
            while high <= remaining and fits_here(high):
                low, high = high, high * 2
            high = min(high, remaining + 1)
            while high - low > 1:
                middle = (low + high) // 2
                if fits_here(middle):
                    low = middle
                else:
                    high = middle
            count = low
        spans.append((start, start + count))
        start += count
        if last_allowed and start < total:
            return spans, total - start
    return spans, 0
