"""Group robots (群机器人): a robot posting to its own group chat. The channel is channels/robot.py."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from alertmanager_wecom.config.contacts import check_mentions, form_of
from alertmanager_wecom.config.targets.base import TargetBase

_MENTION_SOURCE = re.compile(r"^(labels|annotations)\.[A-Za-z_][A-Za-z0-9_]*$")


class RobotTarget(TargetBase):
    """A group robot (群机器人) posting to its own group chat."""

    selected_by: ClassVar[tuple[str, ...]] = ("robot",)
    sends_through: ClassVar[str] = "a group robot (robot: NAME)"
    references: ClassVar[tuple[tuple[str, str, str], ...]] = (("robot", "robot", "robots"),)

    robot: str
    # Who to @mention ("@all" for everyone), also from each alert's labels/annotations.
    mention: list[str] = Field(default_factory=list)
    mention_mobile: list[str] = Field(default_factory=list)
    mention_from: list[str] = Field(default_factory=list)

    @field_validator("mention")
    @classmethod
    def _mention(cls, value: list[str]) -> list[str]:
        return check_mentions(value)

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        get = data.get
        msgtype = get("msgtype", "markdown")
        if get("to_user") or get("to_party") or get("to_tag") or get("chat"):
            raise ValueError("a robot posts to its own group chat: drop to_user/to_party/to_tag/chat")
        if get("fallback") is not None:
            raise ValueError("fallback: only for app targets with templated recipients")
        if msgtype in ("textcard", "template_card"):
            raise ValueError(
                "msgtype: group robots send text, markdown or markdown_v2 (robots get no clicks)"
            )
        if get("card") is not None:
            raise ValueError("card: only for app targets with msgtype template_card")
        if msgtype != "text" and any(isinstance(m, str) and form_of(m) for m in get("mention") or []):
            raise ValueError("mention: mobile: goes in mentioned_mobile_list, which only text messages have")
        if msgtype == "markdown_v2" and (get("mention") or get("mention_mobile") or get("mention_from")):
            raise ValueError("markdown_v2 cannot @mention anyone: use msgtype markdown or text for mentions")
        for source in get("mention_from") or []:
            if isinstance(source, str) and not _MENTION_SOURCE.match(source):
                raise ValueError(f"mention_from: {source!r} must look like labels.NAME or annotations.NAME")
