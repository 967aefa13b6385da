"""Inbound authentication: a bearer token or basic auth, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from alertmanager_wecom.config import InboundAuth


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def authorized(auth: InboundAuth, header: str | None) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if auth.bearer_token is not None:
        return scheme.lower() == "bearer" and _same(value, auth.bearer_token.reveal())
    if auth.basic_auth is not None and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        # Both compared, always, so that timing does not tell which one was wrong.
        user_ok = _same(username, auth.basic_auth.username)
        password_ok = _same(password, auth.basic_auth.password.reveal())
        return bool(sep) and user_ok and password_ok
    return False


def challenge(auth: InboundAuth) -> str:
    return (
        'Basic realm="alertmanager-wecom"'
        if auth.basic_auth is not None
        else 'Bearer realm="alertmanager-wecom"'
    )


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
