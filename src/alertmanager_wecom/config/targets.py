"""Targets: where a receiver's notifications go. A discriminated union, one member per channel.

The YAML is unchanged: the ``app:``/``robot:``/``chat:`` keys decide the member. A new channel adds one
member here (and one entry in `_MEMBERS`) beside its module in channels/.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alertmanager_wecom.config.contacts import check_mentions, check_recipients, kind_of
from alertmanager_wecom.config.fields import Duration, Language, Model, MsgType, check_time_zone

_MENTION_SOURCE = re.compile(r"^(labels|annotations)\.[A-Za-z_][A-Za-z0-9_]*$")


class Fallback(Model):
    """Where alerts go whose templated recipients are all invalid (written in the config: may be @all)."""

    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> Fallback:
        if not (self.to_user or self.to_party or self.to_tag):
            raise ValueError("fallback needs at least one of to_user, to_party, to_tag")
        if any("{{" in r for r in (*self.to_user, *self.to_party, *self.to_tag)):
            raise ValueError("fallback recipients are written out, not templated")
        if any(kind_of(r) for r in self.to_user):
            # The fallback is where alerts go when a look-up finds nobody: it must not need one itself.
            raise ValueError("fallback recipients are userids, not email:/mobile: (a look-up could miss too)")
        return self


class EscalationMark(Model):
    """Which escalation step a stored target is (`_TargetBase.escalation_step`)."""

    policy: str
    round: int = Field(ge=0)  # 0, then 1.. when the policy repeats
    step: int = Field(ge=0)  # the step's index in the policy (shown counting from 2: the first
    # notification is level 1)
    after: float = Field(gt=0)  # seconds after the first notification
    target: int = Field(default=0, ge=0)  # which of the step's targets: each is taken once on its own


class _TargetBase(Model):
    """What every target has, whatever it sends through. Routing and rendering read these."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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


# Each member also names the fields of the other members, as ClassVars holding the "none" they are for
# it (a robot has no `to_user`, an app target no `mention`): code that reads any target (routing,
# rendering, a robot's mentions, `Config`'s reference check) needs no isinstance. ClassVars are neither
# fields nor dumped, and what is specific to a channel is decided by its kind in channels/.


class CardButton(Model):
    """A button of an alert card: acknowledge, silence for a while, or open a page."""

    action: Literal["ack", "silence", "open"]
    text: str | None = None  # default: by the target's language (认领, 静默 1h, 查看)
    duration: Duration | None = None  # silence only
    url: str | None = Field(default=None, pattern=r"^https?://")  # open only: else the generator URL

    @model_validator(mode="after")
    def _fields(self) -> CardButton:
        if self.action == "silence" and not self.duration:
            raise ValueError("a silence button needs a duration (e.g. 1h)")
        if self.action != "silence" and self.duration is not None:
            raise ValueError("duration: only for silence buttons")
        if self.action != "open" and self.url is not None:
            raise ValueError("url: only for open buttons")
        if self.text is not None and not 1 <= len(self.text) <= 10:
            raise ValueError("text: 1 to 10 characters (WeCom's limit for a button)")
        return self


def _default_buttons() -> list[CardButton]:
    return [
        CardButton(action="ack"),
        CardButton(action="silence", duration=3600.0),
        CardButton(action="silence", duration=4 * 3600.0),
        CardButton(action="open"),
    ]


class CardSettings(Model):
    """What a template_card target's cards offer (msgtype: template_card; the app needs a callback)."""

    buttons: list[CardButton] = Field(default_factory=_default_buttons, min_length=1, max_length=6)
    # A silence matches the notification's group labels, or each alert's own labels (one silence each).
    silence_matchers: Literal["group", "alerts"] = "group"
    # Who may press the buttons (userids); empty: anyone the card reached.
    allow_users: list[str] = Field(default_factory=list)
    # The card turns "resolved" in place when its group resolves; and/or a new resolved message.
    resolve_in_place: bool = True
    resolved_message: bool = True
    # After an acknowledgement, repeats of the group are held back this long (never its resolution).
    ack_quiet: Duration = 0.0


class AppTarget(_TargetBase):
    """An app message (应用消息) to users, departments and tags."""

    app: str
    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)
    # Templated recipients: where alerts go when no value of theirs is a valid WeCom id.
    fallback: Fallback | None = None
    # msgtype template_card: the buttons and what they do (defaults when absent).
    card: CardSettings | None = None

    @property
    def card_settings(self) -> CardSettings:
        return self.card or CardSettings()

    @field_validator("to_user", "to_party", "to_tag")
    @classmethod
    def _recipients(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return check_recipients(str(info.field_name), value)

    @property
    def lookups(self) -> bool:
        """Some recipients are email:/mobile:, looked up at send time (delivery/lookup.py)."""
        return any(kind_of(r) for r in self.to_user)

    robot: ClassVar[None] = None
    chat: ClassVar[None] = None
    mention: ClassVar[tuple[str, ...]] = ()
    mention_mobile: ClassVar[tuple[str, ...]] = ()
    mention_from: ClassVar[tuple[str, ...]] = ()

    @property
    def templated_recipients(self) -> bool:
        return any("{{" in r for r in (*self.to_user, *self.to_party, *self.to_tag))


class ChatTarget(_TargetBase):
    """An app chat (群聊会话) of `app`: appchat/send to the chat's members."""

    app: str
    chat: str

    robot: ClassVar[None] = None
    card: ClassVar[None] = None
    to_user: ClassVar[tuple[str, ...]] = ()
    to_party: ClassVar[tuple[str, ...]] = ()
    to_tag: ClassVar[tuple[str, ...]] = ()
    fallback: ClassVar[None] = None
    mention: ClassVar[tuple[str, ...]] = ()
    mention_mobile: ClassVar[tuple[str, ...]] = ()
    mention_from: ClassVar[tuple[str, ...]] = ()


class RobotTarget(_TargetBase):
    """A group robot (群机器人) posting to its own group chat."""

    robot: str
    # Who to @mention ("@all" for everyone), also from each alert's labels/annotations.
    mention: list[str] = Field(default_factory=list)
    mention_mobile: list[str] = Field(default_factory=list)
    mention_from: list[str] = Field(default_factory=list)

    @field_validator("mention")
    @classmethod
    def _mention(cls, value: list[str]) -> list[str]:
        return check_mentions(value)

    app: ClassVar[None] = None
    chat: ClassVar[None] = None
    card: ClassVar[None] = None
    to_user: ClassVar[tuple[str, ...]] = ()
    to_party: ClassVar[tuple[str, ...]] = ()
    to_tag: ClassVar[tuple[str, ...]] = ()
    fallback: ClassVar[None] = None


# The keys each member owns; the others' keys are refused by `_shape` (with the messages operators
# know), or dropped when empty: a target stored in the outbox by an older version carries every
# member's keys, mostly null or [].
_MEMBERS: dict[str, type[_TargetBase]] = {"app": AppTarget, "chat": ChatTarget, "robot": RobotTarget}
_MEMBER_KEYS = set().union(*(m.model_fields for m in _MEMBERS.values())) - set(_TargetBase.model_fields)


def _is_templated(values: object) -> bool:
    return isinstance(values, list) and any(isinstance(v, str) and "{{" in v for v in values)


def _shape(data: Any) -> Any:
    """Which member a target is, checked before the member validates it, with today's messages."""
    if not isinstance(data, dict):
        return data
    get = data.get
    if (get("app") is None) == (get("robot") is None):
        raise ValueError("a target sends through either an app (app: NAME) or a group robot (robot: NAME)")
    recipients = get("to_user") or get("to_party") or get("to_tag")
    mentions = get("mention") or get("mention_mobile") or get("mention_from")
    msgtype = get("msgtype", "markdown")
    if get("robot") is not None:
        if recipients or get("chat"):
            raise ValueError("a robot posts to its own group chat: drop to_user/to_party/to_tag/chat")
        if get("fallback") is not None:
            raise ValueError("fallback: only for app targets with templated recipients")
        if msgtype in ("textcard", "template_card"):
            raise ValueError(
                "msgtype: group robots send text, markdown or markdown_v2 (robots get no clicks)"
            )
        if get("card") is not None:
            raise ValueError("card: only for app targets with msgtype template_card")
    else:
        if msgtype == "markdown_v2":
            raise ValueError("msgtype: markdown_v2 is for group robots; apps send text, markdown or textcard")
        if mentions:
            raise ValueError("mention: only group robots can @mention people")
        templated = any(_is_templated(get(k)) for k in ("to_user", "to_party", "to_tag"))
        looked_up = any(isinstance(v, str) and kind_of(v) for v in get("to_user") or [])
        if get("fallback") is not None and not (templated or looked_up):
            raise ValueError(
                "fallback: only for templated recipients (to_user: ['{{ labels.owner }}']) or "
                "email:/mobile: ones"
            )
        if get("chat") and msgtype == "template_card":
            raise ValueError("msgtype: appchat/send sends no template cards; use an app target (to_user)")
        if get("card") is not None and msgtype != "template_card":
            raise ValueError("card: settings for msgtype template_card (set msgtype: template_card)")
        if get("chat") and get("chart"):
            raise ValueError("chart: for app targets (to_user) and robots; app chats get no charts yet")
        if get("chat") and recipients:
            raise ValueError("an app chat target sends to the chat's members: drop to_user/to_party/to_tag")
        if not get("chat") and not recipients:
            raise ValueError("a target needs at least one of to_user, to_party, to_tag (or chat)")
    if msgtype != "text" and any(isinstance(m, str) and kind_of(m) for m in get("mention") or []):
        raise ValueError("mention: mobile: goes in mentioned_mobile_list, which only text messages have")
    if msgtype == "markdown_v2" and mentions:
        raise ValueError("markdown_v2 cannot @mention anyone: use msgtype markdown or text for mentions")
    for key, most in (("to_user", 1000), ("to_party", 100), ("to_tag", 100)):
        values = get(key)
        if isinstance(values, list) and len(values) > most:
            raise ValueError(
                "to_user: WeCom accepts at most 1000 users per message"
                if key == "to_user"
                else "to_party/to_tag: WeCom accepts at most 100 each"
            )
    for source in get("mention_from") or []:
        if isinstance(source, str) and not _MENTION_SOURCE.match(source):
            raise ValueError(f"mention_from: {source!r} must look like labels.NAME or annotations.NAME")
    own = _MEMBERS[_kind(data)].model_fields
    return {k: v for k, v in data.items() if k in own or k not in _MEMBER_KEYS or v}


def _kind(data: Any) -> str:
    if isinstance(data, _TargetBase):
        return next(k for k, member in _MEMBERS.items() if isinstance(data, member))
    get = data.get if isinstance(data, dict) else (lambda _key: None)
    return "robot" if get("robot") is not None else "chat" if get("chat") else "app"


# A target of a receiver: the `app:`/`robot:`/`chat:` keys decide the member (YAML unchanged).
Target = Annotated[
    Annotated[AppTarget, Tag("app")]
    | Annotated[ChatTarget, Tag("chat")]
    | Annotated[RobotTarget, Tag("robot")],
    Discriminator(_kind),
    BeforeValidator(_shape),
]
AnyTarget = AppTarget | ChatTarget | RobotTarget
_TARGET: TypeAdapter[AnyTarget] = TypeAdapter(Target)


@functools.lru_cache(maxsize=4096)
def parse_target(spec: str) -> AnyTarget:
    """A target as stored with its jobs in the outbox (`target_spec`), also one written by a version
    before the union (every member's keys, the absent ones null or empty).
    Cached: the dispatcher and the CLI parse the same few specs over and over; targets are frozen."""
    return _TARGET.validate_json(spec)


# The stored layout of a target: every member's keys, in this order, those of other members null or
# empty. It is the layout of the single Target class of 0.1, kept so that a target's spec, hence its
# target key, stays the same across an upgrade: jobs already in a user's outbox (a failed one waiting
# for its retry) stay ordered with the new jobs of the same target, and rows of the two versions
# never count as two targets.
_STORED_LAYOUT: tuple[tuple[str, Any], ...] = (
    ("app", None),
    ("robot", None),
    ("chat", None),
    ("to_user", []),
    ("to_party", []),
    ("to_tag", []),
    ("msgtype", None),
    ("send_resolved", None),
    ("language", None),
    ("time_zone", None),
    ("template", None),
    ("title_template", None),
    ("max_messages", None),
    ("mention", []),
    ("mention_mobile", []),
    ("mention_from", []),
    ("max_recipients", None),
    ("max_mentions", None),
    ("fallback", None),
    ("match", []),
    ("continue_", None),
)


def target_spec(target: AnyTarget) -> str:
    """A target as stored with its jobs in the outbox (`_STORED_LAYOUT`): what `parse_target` reads back."""
    stored: dict[str, Any] = {}
    for name, absent in _STORED_LAYOUT:
        value = getattr(target, name, absent)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Model):
            value = value.model_dump(mode="json", by_alias=True)
        stored["continue" if name == "continue_" else name] = value
    # A field added later than the layout goes last, and only when set: a target that does not use it
    # keeps the spec (and the target key) it had before the field existed.
    for name, field in type(target).model_fields.items():
        value = getattr(target, name)
        if name in stored or name == "continue_" or value is None or value == field.default:
            continue
        stored[name] = value.model_dump(mode="json", by_alias=True) if isinstance(value, Model) else value
    return json.dumps(stored, ensure_ascii=False, separators=(",", ":"))


def validate_target(data: Any) -> AnyTarget:
    """A target from a mapping (the CLI's `send` builds one), with the config's checks and messages."""
    return _TARGET.validate_python(data)
