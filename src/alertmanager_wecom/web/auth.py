"""Inbound authentication: a bearer token or basic auth, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from typing import Any

from alertmanager_wecom.config import Config, InboundAuth


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
            # A str with non-ASCII characters raises ValueError, invalid base64 binascii.Error.
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """ASGI middleware: the client is the address that connected, unless that is one of
    ``server.trusted_proxies``; then the right-most ``X-Forwarded-For`` entry that is not a trusted
    proxy (entries further left are written by whoever connected to the proxy, so are not believed)."""

    def __init__(self, app: Any, proxies: list[str]) -> None:
        self.app = app
        self.networks: list[Network] = [ipaddress.ip_network(p, strict=False) for p in proxies]

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip().strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and self.networks and client and self._trusted(client[0]):
            forwarded = b",".join(v for k, v in scope["headers"] if k.lower() == b"x-forwarded-for")
            hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
            host = client[0]
            for hop in reversed(hops):
                host = hop
                if not self._trusted(hop):
                    break
            scope = {**scope, "client": (host, 0)}
            proto = next((v for k, v in scope["headers"] if k.lower() == b"x-forwarded-proto"), b"").strip()
            if proto in (b"http", b"https"):
                scope["scheme"] = proto.decode()
        await self.app(scope, receive, send)


def may_list_receivers(config: Config, header: str | None) -> bool:
    """Whether an answer may name the configured receivers (they say what is monitored): when no
    webhook needs credentials, or the caller's are good for the server or for any receiver (it is one
    of our Alertmanagers)."""
    auths = [auth for auth in (config.server.auth, *(r.auth for r in config.receivers)) if auth]
    return not auths or any(authorized(auth, header) for auth in auths)
