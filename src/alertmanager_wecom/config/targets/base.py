"""What every target has, whatever channel it sends through, and how a channel's target model joins
the `Target` union: subclass `TargetBase` and name the keys that select it (`selected_by`).

The members are found by their keys, never by a tag in the YAML: ``app:`` (with ``chat:``, an app
chat), ``robot:``, ``webhook:``. Defining a member registers it (`members()`); its channel module in
channels/ owns it by its class.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator

from alertmanager_wecom.config.fields import Language, Model, MsgType, check_time_zone

_MEMBERS: list[type[TargetBase]] = []


def members() -> tuple[type[TargetBase], ...]:
    """Every target model defined so far, in the order of definition."""
    return tuple(_MEMBERS)


def withdraw(member: type[TargetBase]) -> None:
    """Forget a member (a test's channel, once the test is over)."""
    _MEMBERS.remove(member)


class EscalationMark(Model):
    """Which escalation step a stored target is (`TargetBase.escalation_step`)."""

    policy: str
    round: int = Field(ge=0)  # 0, then 1.. when the policy repeats
    step: int = Field(ge=0)  # the step's index in the policy (shown counting from 2: the first
    # notification is level 1)
    after: float = Field(gt=0)  # seconds after the first notification
    target: int = Field(default=0, ge=0)  # which of the step's targets: each is taken once on its own


class TargetBase(Model):
    """What every target has, whatever it sends through. Routing and rendering read these."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # The keys that pick this member: all present (not null or empty); the member with the most such
    # keys wins (app + chat is an app chat, app alone an app message).
    selected_by: ClassVar[tuple[str, ...]] = ()
    # The key as the "a target sends through either …" message names it: "an app (app: NAME)"; empty
    # for a member selected by another's key plus its own (chat).
    sends_through: ClassVar[str] = ""
    # What a name in the target refers to: (field, what it is, the Config section holding it), checked
    # by Config: ("robot", "robot", "robots") → "unknown robot 'x' (robots: sre)".
    references: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    msgtype: MsgType = "markdown"
    send_resolved: bool = True
    language: Language | None = None
    time_zone: str | None = None
    template: str | None = None
    title_template: str | None = None
    max_messages: int | None = Field(default=None, ge=1, le=50)
    # Alert data names at most this many distinct people per notification (templated recipients, and
    # mentions from labels): a label cannot page the whole company.
    max_recipients: int = Field(default=20, ge=1, le=1000)
    max_mentions: int = Field(default=10, ge=1, le=100)
    # Routing inside the receiver: Alertmanager matchers (checked by the loader); `continue: false`
    # stops later targets for the alerts this one took.
    match: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=True, alias="continue")
    # A chart of the alert's expression after its message (app targets and robots; needs `prometheus`).
    chart: bool = False
    # Set by ingest on the targets of an escalation step (never written in the config): the step's jobs
    # are due at its time, and say which step they are and why.
    escalation_step: EscalationMark | None = None
    # An escalation policy for the groups this target notifies (when the receiver names none): see
    # `Receiver.escalation`.
    escalation: str | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "selected_by" in cls.__dict__:
            _MEMBERS.append(cls)

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        """Checks of the target as written, before it validates: the keys of other members (an old
        stored spec carries them all, empty) are still there. Raises ValueError with the operator's
        message."""

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    @property
    def templated_recipients(self) -> bool:
        return False

    @property
    def lookups(self) -> bool:
        return False

    def template_key(self) -> tuple[str | None, str | None, str]:
        """What the compiled templates depend on: the loader keeps them under this key."""
        return (self.template, self.title_template, self.msgtype)
