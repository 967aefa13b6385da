"""What the config's models share: the frozen base model, durations, time zones, message types, HTTP
header names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict

MsgType = Literal["text", "markdown", "textcard", "markdown_v2", "template_card"]
Language = Literal["zh", "en"]


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
    r"(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+)ms)?\s*$"
)


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``90``, ``1.5s``, ``5m``, ``24h``, ``1h30m``, ``7d``, ``250ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not value.strip() or match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 24h, 1h30m)")
        d, h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
        seconds = d * 86400 + h * 3600 + m * 60 + s + ms / 1000
    else:
        raise ValueError("expected a duration such as 30s, 5m, 24h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
    return value


# RFC 9110's token: what an HTTP header name may be.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def check_header_names(names: Iterable[str]) -> None:
    """Raises ValueError naming the first that is not an HTTP header name."""
    for name in names:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not an HTTP header name")
