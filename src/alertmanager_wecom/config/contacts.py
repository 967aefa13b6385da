"""Recipients written as an email address or a mobile number (``email:alice@corp.com``,
``mobile:13800000000``): WeCom's user/get_userid_by_email and user/getuserid turn them into a userid at
send time (wecom/userid.py).

A leaf, like the config models that check literal values with it at load time; ingest checks the values
rendered from alert data with it too. Alert data is hostile: a value is one address or one number, never
a list (``a@x.com,b@x.com``), never something that could reach more people or open markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import Field

from alertmanager_wecom.config.fields import Duration, Model


class LookupSettings(Model):
    """The `wecom:` settings of the look-ups (WeComSettings has them)."""

    # The answers are kept: a userid found this long, "no such member" this long.
    lookup_cache_found: Duration = Field(default=86400.0, ge=0)
    lookup_cache_not_found: Duration = Field(default=3600.0, ge=0)
    # WeCom blocks these APIs for a day once wrong look-ups pass 20 % of the corp's member cap: at most
    # this many look-ups that find nobody per corp in 24 h; past it no new value is looked up.
    lookup_unknown_per_day: int = Field(default=100, ge=0)


# The form a recipient is written in: the prefix that says what to look it up by.
ContactForm = Literal["email", "mobile"]
FORMS: Final[tuple[ContactForm, ...]] = ("email", "mobile")

# WeCom's user/create takes an email of 6-64 bytes; an address is local@domain, the domain dotted.
# Only the characters ordinary addresses use: no quotes, spaces, commas, semicolons, | or <>, so that one
# value is one address and nothing else.
_EMAIL: Final = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# user/getuserid takes 5-32 bytes: digits, or "+<country code>" then the number, optionally parted from it
# by one space or dash as WeCom's directory writes international numbers ("+852 51234567").
_MOBILE: Final = re.compile(r"[0-9]{5,32}|\+[0-9]{1,4}[ -]?[0-9]{4,26}")


@dataclass(frozen=True)
class Contact:
    form: ContactForm
    value: str

    def __str__(self) -> str:
        return f"{self.form}:{self.value}"

    @property
    def noun(self) -> str:
        """How a person reads the form: 'email' / 'mobile number'."""
        return "email" if self.form == "email" else "mobile number"


def form_of(text: str) -> ContactForm | None:
    """The form a recipient is written in (its ``email:``/``mobile:`` prefix), None for a userid."""
    head, sep, _ = text.partition(":")
    return head if sep and head in FORMS else None


def form_problem(form: ContactForm, value: str) -> str | None:
    """Why `value` is not one email address / one mobile number (None when it is)."""
    if form == "email":
        if not 6 <= len(value.encode()) <= 64 or not _EMAIL.fullmatch(value):
            return "is not one email address (name@domain, 6-64 bytes, no separators)"
        return None
    if not 5 <= len(value.encode()) <= 32 or not _MOBILE.fullmatch(value):
        return "is not one mobile number (5-32 digits, optionally +country code first)"
    return None


def parse_contact(text: str) -> Contact | None:
    """``email:X`` / ``mobile:X`` with X of the right form, else None (a userid, or an invalid value)."""
    form = form_of(text)
    if form is None:
        return None
    value = text.partition(":")[2]
    return Contact(form, value) if form_problem(form, value) is None else None


def contact_problem(text: str) -> str | None:
    """For a recipient with an ``email:``/``mobile:`` prefix: why it is not one valid value (None when it
    is, and for text without such a prefix)."""
    form = form_of(text)
    if form is None:
        return None
    return form_problem(form, text.partition(":")[2])


def check_recipients(field: str, values: list[str]) -> list[str]:
    """A target's to_user/to_party/to_tag (`field`): email:/mobile: only in to_user, and one value when
    written out (a templated one is checked when alert data fills it in: ingest/recipients.py)."""
    for value in values:
        if form_of(value) is None:
            continue
        if field != "to_user":
            raise ValueError(f"{value!r}: email:/mobile: name people, so they go in to_user")
        problem = None if "{{" in value else contact_problem(value)
        if problem is not None:
            raise ValueError(f"{value!r}: the part after the prefix {problem}")
    return values


def check_mentions(values: list[str]) -> list[str]:
    """A robot's mention: userids and mobile: numbers (mentioned_mobile_list); a robot has no token to
    look an email up with."""
    for value in values:
        if form_of(value) == "email":
            raise ValueError(
                f"{value!r}: a robot has no app token to look an email up: mention a userid or mobile:"
            )
        problem = contact_problem(value)
        if problem is not None:
            raise ValueError(f"{value!r}: the part after mobile: {problem}")
    return values
