"""Targets: where a receiver's notifications go, one model per channel (this folder: app.py, chat.py,
robot.py, webhook.py), each a subclass of `TargetBase` found by its keys.

`Target` validates a mapping into the member its keys select: the YAML has no tag (``app:``, ``app:``
with ``chat:``, ``robot:``, ``webhook:``). Every module of this folder is imported here, so a config
loaded anywhere knows every channel's targets; a channel's model joins by being defined.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from typing import Annotated, Any

from pydantic import PlainValidator, SerializeAsAny, TypeAdapter

from alertmanager_wecom.config.fields import Model
from alertmanager_wecom.config.targets.app import AppTarget, CardButton, CardSettings, Fallback
from alertmanager_wecom.config.targets.base import EscalationMark, TargetBase, members, withdraw
from alertmanager_wecom.config.targets.chat import ChatTarget
from alertmanager_wecom.config.targets.robot import RobotTarget
from alertmanager_wecom.config.targets.webhook import WebhookConfig, WebhookTarget

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # a channel's model, defined: registered

__all__ = [
    "AppTarget",
    "CardButton",
    "CardSettings",
    "ChatTarget",
    "EscalationMark",
    "Fallback",
    "RobotTarget",
    "Target",
    "TargetBase",
    "WebhookConfig",
    "WebhookTarget",
    "members",
    "parse_target",
    "target_spec",
    "validate_target",
    "withdraw",
]


def _present(value: object) -> bool:
    return value is not None and value != "" and value != []


def _member(data: dict[str, Any]) -> type[TargetBase]:
    """The member the keys select: all its `selected_by` keys present, the most such keys winning."""
    found = [m for m in members() if all(_present(data.get(k)) for k in m.selected_by)]
    most = max((len(m.selected_by) for m in found), default=0)
    best = [m for m in found if len(m.selected_by) == most]
    if len(best) != 1:
        ways = [m.sends_through for m in members() if m.sends_through]
        listed = ", ".join(ways[:-1]) + f" or {ways[-1]}" if len(ways) > 1 else "".join(ways)
        raise ValueError(f"a target sends through either {listed}")
    return best[0]


def _validate(data: Any) -> TargetBase:
    """A target from its mapping (or a target already): the member's own checks first (`shape`), with
    the messages operators know, then its model. A target stored in the outbox by an older version
    carries every member's keys, mostly null or []: those of other members are dropped when empty."""
    if isinstance(data, TargetBase):
        return data
    if not isinstance(data, dict):
        raise ValueError("a target is a mapping: app: NAME and its recipients, robot: NAME, …")
    member = _member(data)
    member.shape(data)
    own = member.model_fields
    others = set().union(*(m.model_fields for m in members())) | {k for k, _ in _STORED_LAYOUT}
    kept = {k: v for k, v in data.items() if k in own or k not in others or _present(v)}
    return member.model_validate(kept)


# A target of a receiver (or of an escalation step): the member its keys select.
Target = Annotated[SerializeAsAny[TargetBase], PlainValidator(_validate)]
_TARGET: TypeAdapter[TargetBase] = TypeAdapter(Target)


@functools.lru_cache(maxsize=4096)
def parse_target(spec: str) -> TargetBase:
    """A target as stored with its jobs in the outbox (`target_spec`), also one written by a version
    before the union (every member's keys, the absent ones null or empty).
    Cached: the dispatcher and the CLI parse the same few specs over and over; targets are frozen."""
    return _TARGET.validate_json(spec)


# The stored layout of a target: every member's keys, in this order, those of other members null or
# empty. It is the layout of the single Target class of 0.1, kept so that a target's spec, hence its
# target key, stays the same across an upgrade: jobs already in a user's outbox (a failed one waiting
# for its retry) stay ordered with the new jobs of the same target, and rows of the two versions
# never count as two targets. A channel added since writes its own keys after these (`target_spec`).
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


def target_spec(target: TargetBase) -> str:
    """A target as stored with its jobs in the outbox (`_STORED_LAYOUT`): what `parse_target` reads back."""
    stored: dict[str, Any] = {}
    for name, absent in _STORED_LAYOUT:
        value = getattr(target, name, absent)
        if isinstance(value, Model):
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


def validate_target(data: Any) -> TargetBase:
    """A target from a mapping (the CLI's `send` builds one), with the config's checks and messages."""
    return _TARGET.validate_python(data)
