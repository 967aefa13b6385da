"""Recipients and mentions taken from alert data: each one valid WeCom id, never more.

A label such as ``owner`` may name whom to send to or @mention, but alert data is hostile: ``@all``
would page every member, ``alice|bob`` two people where one was meant, ``x><@all`` a markdown mention
of everyone. So a value from alert data is used only when the whole of it is exactly one id of the
documented form; anything else is refused with a reason. ``@all`` works only when written in the config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from alertmanager_wecom.config.contacts import ContactForm, form_of, form_problem

# WeCom userid (doc 90195, user/create): 1-64 bytes of letters, digits and "_-@.", the first a letter
# or digit — which also keeps out "@all". Department and tag ids are positive 32-bit numbers.
_USERID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_NUMERIC_ID: Final = re.compile(r"[1-9][0-9]{0,9}")
# Where a recipient from alert data goes: a target's field, or a robot's @mention.
RecipientField = Literal["to_user", "to_party", "to_tag", "mention"]


def written_form(source: str) -> ContactForm | None:
    """The form of recipient a template's own text names (``email:{{ labels.owner_email }}``): only the
    config decides that a value is an email or a mobile number, never the value itself."""
    return form_of(source.lstrip())


def bare(value: str, lookup: ContactForm | None) -> str:
    """The value without the prefix the config wrote: what the alert data filled in."""
    return value.removeprefix(f"{lookup}:") if lookup is not None else value


def refusal(where: RecipientField, value: str, lookup: ContactForm | None = None) -> str | None:
    """Why `value` (from alert data) cannot be a recipient in `where`, or None when it is one valid id.
    `lookup`: the template was written ``email:…``/``mobile:…``; the value must be of that form."""
    if not bare(value, lookup):
        return "is empty for this alert"
    shown = value if len(value) <= 80 else value[:77] + "..."
    if lookup is not None:
        problem = form_problem(lookup, value[len(lookup) + 1 :]) if value.startswith(f"{lookup}:") else ""
        return None if problem is None else f"gives {shown!r}, which {problem or 'lost its prefix'}"
    if value.lower() == "@all":
        return f"gives {shown!r}: @all is allowed only when written in the config"
    if form_of(value) is not None:
        return (
            f"gives {shown!r}: email:/mobile: only when the config writes it "
            "(to_user: ['email:{{ labels.owner_email }}'])"
        )
    person = where in ("to_user", "mention")
    if (_USERID if person else _NUMERIC_ID).fullmatch(value):
        return None
    if person:
        return (
            f"gives {shown!r}, which is not a valid WeCom id (one userid: letters, digits and _-@., "
            "no separators)"
        )
    return f"gives {shown!r}, which is not a valid WeCom id (a department or tag id is a number)"


@dataclass
class Budget:
    """Distinct ids that alert data may name in one notification; the rest are refused."""

    limit: int
    taken: set[str] = field(default_factory=set)

    def admit(self, value: str) -> bool:
        if value in self.taken:
            return True
        if len(self.taken) >= self.limit:
            return False
        self.taken.add(value)
        return True


def summarize(problems: Iterable[str], most: int = 5) -> str:
    """Distinct problems, the first `most` of them, and how many more: one log line per notification."""
    distinct = list(dict.fromkeys(problems))
    shown = "; ".join(distinct[:most])
    return shown + (f" (and {len(distinct) - most} more)" if len(distinct) > most else "")
