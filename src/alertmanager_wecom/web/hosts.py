"""The service answers only its own hosts (DNS rebinding), and a state-changing request only from them.

A web page on ``evil.example`` can point its name at 127.0.0.1 and then talk to us from the browser of
anyone running the service (the sandbox console needs no login on loopback): the request's ``Host`` is
``evil.example``, so a request whose Host is not one we serve is answered 421 before any route.

The hosts served: ``server.allowed_hosts`` (names, ``*.example.com`` for a domain's subdomains, ``*`` for
any), the listen address, ``localhost`` and the loopback addresses, and the host of
``server.external_url``. When listening on every address (0.0.0.0, ::) an IP address is answered too:
probes and peers reach a pod by its IP, and a rebinding attack needs a name, not an address.

An ``Origin`` (a browser names the page that sent a request) on a state-changing request must be one of
those names, or the very host the request was sent to; ``Origin: null`` and ``Sec-Fetch-Site:
cross-site`` are refused.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from alertmanager_wecom.config import Config
from alertmanager_wecom.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_refusals = ThrottledLog(log)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def hostname(netloc: str) -> str:
    """``Example.COM.:9095`` → ``example.com``; ``[::1]:9095`` → ``::1``; lower case, no trailing dot."""
    netloc = netloc.strip()
    if netloc.startswith("["):
        name = netloc[1:].partition("]")[0]
    elif netloc.count(":") == 1:
        name = netloc.partition(":")[0]
    else:
        name = netloc  # a bare IPv6 address, or no port
    return name.rstrip(".").lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _hosts_of(urls: Iterable[str]) -> list[str]:
    return [host for url in urls if (host := urllib.parse.urlsplit(url).hostname)]


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str]
    suffixes: tuple[str, ...]  # ".example.com" for "*.example.com"
    any_host: bool
    any_ip: bool  # listening on every address

    @classmethod
    def build(cls, allowed: Iterable[str], listen_host: str, external_url: str | None) -> HostPolicy:
        names = {*LOOPBACK_NAMES}
        suffixes = []
        any_host = False
        for item in allowed:
            item = item.strip().lower().rstrip(".")
            if item == "*":
                any_host = True
            elif item.startswith("*."):
                suffixes.append(item[1:])
            else:
                names.add(hostname(item))
        listen = listen_host.strip("[]").lower()
        if listen not in _WILDCARDS:
            names.add(listen)
        if external_url:
            external = urllib.parse.urlsplit(external_url).hostname
            if external:
                names.add(external.lower().rstrip("."))
        return cls(frozenset(names), tuple(suffixes), any_host, listen in _WILDCARDS)

    @classmethod
    def for_config(cls, config: Config, listen_host: str | None = None) -> HostPolicy:
        server = config.server
        if listen_host is None:
            listen_host = server.listen.rpartition(":")[0] if ":" in server.listen else server.listen
        # The hosts of the apps' callback URLs: WeCom calls them, by that name.
        callbacks = [app.callback.url for app in config.apps.values() if app.callback and app.callback.url]
        return cls.build([*server.allowed_hosts, *_hosts_of(callbacks)], listen_host, server.external_url)

    def __str__(self) -> str:
        shown = sorted(self.names) + [f"*{s}" for s in self.suffixes]
        if self.any_ip:
            shown.append("any IP address")
        return "any" if self.any_host else ", ".join(shown)

    def serves(self, name: str) -> bool:
        """Whether `name` (a hostname, as `hostname` gives it) is one of ours."""
        if not name:
            return False
        if self.any_host or name in self.names or any(name.endswith(s) for s in self.suffixes):
            return True
        return self.any_ip and _is_ip(name)

    def origin_refusal(self, origin: str | None, host: str, fetch_site: str | None) -> str | None:
        """Why a state-changing request from this `Origin` is refused, or None. No Origin: not a
        browser's cross-site request (browsers send one on every cross-origin POST)."""
        if (fetch_site or "").lower() == "cross-site":
            return "cross-site request refused (Sec-Fetch-Site: cross-site)"
        if origin is None:
            return None
        parts = urllib.parse.urlsplit(origin.strip())
        if origin.strip() == "null" or parts.scheme not in ("http", "https") or not parts.netloc:
            return "cross-site request refused (Origin: null or not a web page)"
        if parts.netloc.lower() == host.lower():
            return None  # the page came from the host this request went to, which we serve
        name = hostname(parts.netloc)
        if name in self.names or self.any_host or any(name.endswith(s) for s in self.suffixes):
            return None
        return f"cross-site request refused (Origin {parts.netloc[:100]!r} is not a host this service serves)"


class AllowedHosts:
    """An app that wraps the app: a request whose Host is not served gets 421, before any route."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
                break
        if self.policy.serves(hostname(host)):
            await self.app(scope, receive, send)
            return
        shown = host[:100]
        _refusals.warning(
            "refused a request for Host %r: not a host this service serves (add it to server.allowed_hosts)",
            shown,
        )
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            {
                "error": f"this service does not answer for Host {shown!r}: add the name to "
                "server.allowed_hosts (or set server.external_url)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
