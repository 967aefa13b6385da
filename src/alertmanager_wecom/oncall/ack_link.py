"""Signed acknowledge links: ``<server.external_url>/ack/<token>``, carried by the text and markdown
messages of a receiver with an escalation policy, for companies that cannot expose a callback URL (the
card's 认领 button needs one).

A token names the receiver and the alert group (its `group_id`, never the group key: that is alert data)
and when it expires, signed with HMAC-SHA256 under `oncall.ack_key`. Nothing else is trusted: the link
acknowledges the group's current incident, once; a token altered in any byte, signed with another key,
or past its time is refused with the reason. A digest's link names the digest instead (``j<job id>``,
`digest_group`): its groups are read from the digest the outbox keeps, each acknowledged once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_VERSION = "1"
_SIGNATURE_BYTES = 16  # 128 bits: a forgery is a 2**-128 guess; the URL stays short
_RECEIVER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_GROUP = re.compile(r"^([0-9a-f]{20}|j[1-9][0-9]{0,17})$")  # a group_id, or a digest's job


def digest_link_group(job_id: int) -> str:
    """What a digest's link names in place of a group: the outbox job that holds the digest."""
    return f"j{job_id}"


def digest_job(group: str) -> int | None:
    """The digest's job id if the verified `group` names a digest (see `digest_link_group`), else None."""
    return int(group[1:]) if group.startswith("j") else None


class BadLink(Exception):
    """Why a link does not acknowledge (shown to the person who opened it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES])


def sign(key: bytes, receiver: str, group: str, expires: float) -> str:
    """The token of a link that acknowledges `group` of `receiver` until `expires` (seconds since 1970)."""
    body = f"{_VERSION}.{_b64(receiver.encode())}.{group}.{int(expires)}"
    return f"{body}.{_signature(key, body)}"


def verify(key: bytes, token: str, now: float) -> tuple[str, str]:
    """(receiver, group) of a token signed with `key` and not expired at `now`; else BadLink."""
    if len(token) > 512:
        raise BadLink("this link is not an acknowledge link (too long)")
    body, _, signature = token.rpartition(".")
    parts = body.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        raise BadLink("this link is not an acknowledge link (it was cut or altered)")
    if not hmac.compare_digest(_signature(key, body), signature):
        raise BadLink("this link's signature does not match: it was altered, or signed with another key")
    _version, receiver_b64, group, expires = parts
    try:
        receiver = _unb64(receiver_b64).decode()
        until = int(expires)
    except (ValueError, UnicodeDecodeError):
        raise BadLink("this link is not an acknowledge link (it was cut or altered)") from None
    if not _RECEIVER.match(receiver) or not _GROUP.match(group):
        raise BadLink("this link is not an acknowledge link (it was cut or altered)")
    if now > until:
        raise BadLink("this link has expired: acknowledge from the console or the card instead")
    return receiver, group
