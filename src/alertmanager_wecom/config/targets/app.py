"""App messages (应用消息): an app's message/send to users, departments and tags; with `chat:`, an app
chat (chat.py). The app's channel is channels/app_message.py."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from alertmanager_wecom.config.contacts import check_recipients, form_of
from alertmanager_wecom.config.fields import Duration, Model
from alertmanager_wecom.config.targets.base import TargetBase

RECIPIENT_FIELDS = ("to_user", "to_party", "to_tag")


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
        if any(form_of(r) for r in self.to_user):
            # The fallback is where alerts go when a look-up finds nobody: it must not need one itself.
            raise ValueError("fallback recipients are userids, not email:/mobile: (a look-up could miss too)")
        return self


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


def _is_templated(values: object) -> bool:
    return isinstance(values, list) and any(isinstance(v, str) and "{{" in v for v in values)


def app_shape(data: dict[str, Any]) -> None:
    """The checks of an app's targets (messages and chats), with the messages operators know."""
    get = data.get
    recipients = get("to_user") or get("to_party") or get("to_tag")
    msgtype = get("msgtype", "markdown")
    if msgtype == "markdown_v2":
        raise ValueError("msgtype: markdown_v2 is for group robots; apps send text, markdown or textcard")
    if get("mention") or get("mention_mobile") or get("mention_from"):
        raise ValueError("mention: only group robots can @mention people")
    templated = any(_is_templated(get(k)) for k in RECIPIENT_FIELDS)
    looked_up = any(isinstance(v, str) and form_of(v) for v in get("to_user") or [])
    if get("fallback") is not None and not (templated or looked_up):
        raise ValueError(
            "fallback: only for templated recipients (to_user: ['{{ labels.owner }}']) or email:/mobile: ones"
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
    for key, most in (("to_user", 1000), ("to_party", 100), ("to_tag", 100)):
        values = get(key)
        if isinstance(values, list) and len(values) > most:
            raise ValueError(
                "to_user: WeCom accepts at most 1000 users per message"
                if key == "to_user"
                else "to_party/to_tag: WeCom accepts at most 100 each"
            )


class AppTarget(TargetBase):
    """An app message (应用消息) to users, departments and tags."""

    selected_by: ClassVar[tuple[str, ...]] = ("app",)
    sends_through: ClassVar[str] = "an app (app: NAME)"
    references: ClassVar[tuple[tuple[str, str, str], ...]] = (("app", "app", "apps"),)

    app: str
    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)
    # Templated recipients: where alerts go when no value of theirs is a valid WeCom id.
    fallback: Fallback | None = None
    # msgtype template_card: the buttons and what they do (defaults when absent).
    card: CardSettings | None = None

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        app_shape(data)

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
        return any(form_of(r) for r in self.to_user)

    @property
    def templated_recipients(self) -> bool:
        return any("{{" in r for r in (*self.to_user, *self.to_party, *self.to_tag))
