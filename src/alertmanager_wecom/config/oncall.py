"""The `oncall:` section: schedules (who is on call when), escalation policies (who is told next when
nobody acknowledges) and the signed acknowledge links. A leaf like the other config models: what a
schedule means at a given time is oncall/schedule.py's, how a policy runs is delivery's.

Anywhere a recipient or a robot mention is written, ``oncall:<schedule>`` names the person on call at
send time (overrides included).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from pydantic import Field, field_validator, model_validator

from alertmanager_wecom.config.fields import Duration, Model, check_time_zone, parse_duration
from alertmanager_wecom.config.targets import Target
from alertmanager_wecom.secret import Secret

PREFIX: Final = "oncall:"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HANDOFF = re.compile(r"^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?([01]?[0-9]|2[0-3]):([0-5][0-9])$")
WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MOST_STEPS: Final = 10
MOST_REPEATS: Final = 10


def schedule_of(recipient: str) -> str | None:
    """The schedule a recipient names (``oncall:sre`` → ``sre``), None for anything else."""
    return recipient[len(PREFIX) :] if recipient.startswith(PREFIX) else None


def _check_name(section: str, names: dict[str, Any]) -> None:
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{section} {name!r}: use letters, digits, '_', '.', '-' (at most 64)")


class Schedule(Model):
    """A rotation: members take turns, in order, each for one `rotation`, from `start`'s hand-off on."""

    members: list[str] = Field(min_length=1, max_length=200)
    # daily | weekly | a duration such as 12h (at least 1h)
    rotation: str = "daily"
    # "HH:MM" in `time_zone`; weekly: "Mon 09:00" (the day the week's shift starts)
    handoff: str = "09:00"
    time_zone: str = "Asia/Shanghai"
    # members[0]'s first shift begins at this day's hand-off (weekly: the first hand-off day on or after it)
    start: dt.date

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        for member in value:
            if not member or member != member.strip() or any(c in member for c in "|,@{}") or ":" in member:
                raise ValueError(f"{member!r}: a member is one WeCom userid (no separators, no prefix)")
        return value

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, value: str) -> str:
        if value in ("daily", "weekly"):
            return value
        seconds = parse_duration(value)
        if seconds < 3600:
            raise ValueError("a rotation is daily, weekly or a duration of at least 1h (e.g. 12h)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_time_zone(value)

    @model_validator(mode="after")
    def _handoff(self) -> Schedule:
        match = _HANDOFF.match(self.handoff.strip())
        if match is None:
            raise ValueError(
                f"handoff {self.handoff!r}: write HH:MM, or for weekly rotations e.g. 'Mon 09:00'"
            )
        if match.group(1) and self.rotation != "weekly":
            raise ValueError("handoff: a weekday is for weekly rotations only; write HH:MM")
        return self

    @property
    def rotation_seconds(self) -> float | None:
        """A fixed rotation's length; None for daily/weekly (they follow the wall clock of `time_zone`)."""
        if self.rotation in ("daily", "weekly"):
            return None
        return parse_duration(self.rotation)

    @property
    def handoff_time(self) -> tuple[int | None, int, int]:
        """(weekday 0 = Monday or None, hour, minute)."""
        match = _HANDOFF.match(self.handoff.strip())
        assert match is not None
        day = WEEKDAYS.index(match.group(1)) if match.group(1) else None
        return day, int(match.group(2)), int(match.group(3))


class EscalationStep(Model):
    # From the first notification of the group (not from the step before).
    after: Duration = Field(gt=0)
    targets: list[Target] = Field(min_length=1, max_length=10)


class EscalationPolicy(Model):
    """Steps taken while nobody acknowledges; stopped by an acknowledgement, a silence from a card or
    the group's resolution, checked when each step is due."""

    # Run the steps this many more times: round r's step is due at its `after` + r × the last step's.
    repeat: int = Field(default=0, ge=0, le=MOST_REPEATS)
    steps: list[EscalationStep] = Field(min_length=1, max_length=MOST_STEPS)

    @model_validator(mode="after")
    def _order(self) -> EscalationPolicy:
        afters = [step.after for step in self.steps]
        if afters != sorted(set(afters)):
            raise ValueError("steps: each step's `after` must be later than the one before")
        return self

    def due_offsets(self) -> list[tuple[int, int, float]]:
        """(round, step index from 0, seconds after the first notification) of every step to take."""
        cycle = self.steps[-1].after
        return [
            (r, i, step.after + r * cycle)
            for r in range(self.repeat + 1)
            for i, step in enumerate(self.steps)
        ]


class OncallSettings(Model):
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    escalations: dict[str, EscalationPolicy] = Field(default_factory=dict)
    # The HMAC key of the acknowledge links in text and markdown messages (ack_key_file: from a file);
    # with server.external_url set, messages of a receiver with an escalation carry such a link.
    ack_key: Secret | None = None
    # How long a link acknowledges.
    ack_link_ttl: Duration = Field(default=7 * 86400.0, ge=60)

    @model_validator(mode="after")
    def _names(self) -> OncallSettings:
        _check_name("schedule", self.schedules)
        _check_name("escalation", self.escalations)
        if self.ack_key is not None and len(self.ack_key.reveal().encode()) < 16:
            raise ValueError("ack_key: use at least 16 random bytes (e.g. openssl rand -hex 32)")
        return self
